"""The ``s4op`` command."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="s4op", description="Operator-pruned S4/S4D models: kernels and pruner.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("info", help="how the package was built and which backends it can run")
    args = parser.parse_args(argv)
    if args.command == "info":
        from s4op_kernels import info

        return info.main()
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
