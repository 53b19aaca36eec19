"""``python node/run.py --testnet|--demo|--live ...``: the paper / live node (``nhmm node run``).

A thin script over :mod:`node.live`; ``python node/run.py --help`` lists every option.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # run as a file, sys.path[0] is node/ (whose modules would shadow top-level names): the repo
    sys.path[0] = str(Path(__file__).resolve().parents[1])
    from node.live.cli import run

    run(prog_name="node/run.py")
