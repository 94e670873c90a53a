"""``python -m synthproxy``: the workflow's command-line entry point."""

import sys

from synthproxy.cli import main

sys.exit(main())
