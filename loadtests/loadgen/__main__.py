"""`python -m loadtests.loadgen URL ...`: see `loadtests.loadgen.cli`."""

from __future__ import annotations

from loadtests.loadgen.cli import main

raise SystemExit(main())
