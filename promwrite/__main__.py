"""``python -m promwrite`` / ``promwrite``: the command line."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import __version__


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="promwrite", description="Push metrics to Prometheus remote-write endpoints.")
    parser.add_argument("--version", action="version", version=f"promwrite {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="write a realistic batch to an embedded receiver and verify it")
    demo.add_argument("--series", type=int, default=2000, help="series to write (default 2000)")
    demo.add_argument("--samples", type=int, default=10, help="samples per series (default 10)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from . import demo as demo_module

        return demo_module.run(args.series, args.samples)
    return 2  # argparse requires a command, so this is not reached


if __name__ == "__main__":
    sys.exit(main())
