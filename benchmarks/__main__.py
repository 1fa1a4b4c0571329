"""`python -m benchmarks`: the single entry point (see `benchmarks/run.py`)."""

from benchmarks.run import main

raise SystemExit(main())
