"""`python -m loadtests.bench.generator URL ...`: see `loadtests.bench.generator.cli`."""

from __future__ import annotations

from loadtests.bench.generator.cli import main

raise SystemExit(main())
