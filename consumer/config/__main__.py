"""``python -m consumer.config``: print the README's settings table, or rewrite it in place.

``python -m consumer.config`` prints the table; ``--write README.md`` puts it between the
file's marker lines (what ``./dev docs`` runs). Imports nothing but ``consumer.config.docs``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from consumer.config.docs import markdown_table, with_table


def main(argv: list[str] | None = None) -> int:
    """Print the table, or write it into the file named by ``--write``; 0 on success."""
    parser = argparse.ArgumentParser(prog="python -m consumer.config", description=__doc__)
    parser.add_argument("--write", type=Path, metavar="FILE", help="rewrite the table in FILE")
    args = parser.parse_args(argv)
    if args.write is None:
        sys.stdout.write(markdown_table() + "\n")
        return 0
    path: Path = args.write
    before = path.read_text(encoding="utf-8")
    after = with_table(before)
    if after != before:
        path.write_text(after, encoding="utf-8")
    sys.stderr.write(f"{path}: settings table {'rewritten' if after != before else 'current'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
