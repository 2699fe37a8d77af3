"""``python -m robench3d``: the command-line interface."""

from robench3d.cli import main

raise SystemExit(main())
