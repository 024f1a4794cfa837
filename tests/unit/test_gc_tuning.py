"""The web process's garbage-collector settings: a larger youngest generation, start-up frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from resilience_async import tune_gc_for_serving
from resilience_async._gc import OLDER_THRESHOLDS


@pytest.fixture(autouse=True)
def _restore_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tuning_sets_the_thresholds_and_freezes_what_is_alive() -> None:
    gc.unfreeze()

    tune_gc_for_serving(10_000)

    assert gc.get_threshold() == (10_000, *OLDER_THRESHOLDS)
    assert gc.get_freeze_count() > 0  # the modules, functions and settings alive now


def test_a_threshold_below_1_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        tune_gc_for_serving(0)
