"""``python -m bench``: run the benchmark (see bench/README.md)."""

import sys

from bench.cli import main

sys.exit(main())
