"""``python -m consumer.sandbox.engage``: the simulator in a process of its own."""

import sys

from consumer.sandbox.engage.cli import main

sys.exit(main())
