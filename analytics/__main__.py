"""`python -m analytics report|inbox|simulate`: how the bot is doing, what it misunderstood, and traffic to try it.

Each subcommand lives in its own module (analytics/report.py, inbox.py, simulate.py), which adds its parser with
`add_parser(subparsers)` and runs with the parsed arguments; a problem the user can fix is one clear line and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from analytics import UsageProblem, inbox, report, simulate


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analytics", description=__doc__.split("\n\n")[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (report, inbox, simulate):
        module.add_parser(subparsers)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UsageProblem as problem:
        print(f"analytics {args.command}: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
