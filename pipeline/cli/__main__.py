"""``python -m pipeline.cli``: the planie command line."""

from pipeline.cli.main import main

raise SystemExit(main())
