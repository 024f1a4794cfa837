"""The suite's own check that it leaves the checkout as it found it sees every stray file."""

from __future__ import annotations

import shutil

from tests.fix_tree import ROOT, tree_status


def test_a_new_file_in_the_checkout_is_seen_and_a_cache_is_not() -> None:
    before = tree_status()
    assert before is not None  # the suite runs from a git checkout
    stray, ignored, cache = (
        ROOT / "stray-from-a-test.txt",
        ROOT / "reports",
        ROOT / "app" / ".mypy_cache",
    )
    made_reports = not ignored.exists()
    try:
        stray.write_text("left behind\n")
        (ignored / "left-behind").mkdir(parents=True, exist_ok=True)
        (ignored / "left-behind" / "report.json").write_text("{}\n")
        cache.mkdir(exist_ok=True)
        (cache / "CACHEDIR.TAG").write_text("a cache\n")
        after = tree_status()
    finally:
        stray.unlink()
        shutil.rmtree(ignored / "left-behind")
        if made_reports:
            ignored.rmdir()
        shutil.rmtree(cache, ignore_errors=True)
    assert after is not None
    new = after - before
    assert "?? stray-from-a-test.txt" in new
    assert any(line.startswith("!! reports/") for line in new)
    assert not any(".mypy_cache" in line for line in new)
