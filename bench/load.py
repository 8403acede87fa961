"""Load: 20 daemons on 127.0.0.1, 3 customers backing up at once to overlapping suppliers,
200 concurrent API clients on one of the customers. Prints figures, judges nothing (the
same run, judged, is ``tests/reliability/test_load.py``; the code is in
``tests/reliability/load_helpers.py``).

    .venv/bin/python bench/load.py                # clients pause 1 s on average between calls
    .venv/bin/python bench/load.py --think 0.25   # 4 times the call rate

Prints: start-up time of the network, who backs up to whom, backup and restore time,
API calls/s, median, p99 and max latency during the backups, and the loaded daemon's
open descriptors, RSS and threads at start (after a warm-up) and end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.reliability import load_helpers  # needs the repository root on sys.path (above)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--think", type=float, default=load_helpers.THINK,
                        help="mean seconds each API client waits between two calls")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bitdust-bench-load-") as tmp:
        report = load_helpers.LoadReport(Path(tmp) / "net")
        try:
            load_helpers.run(Path(tmp), report, think=args.think)
        finally:
            print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
