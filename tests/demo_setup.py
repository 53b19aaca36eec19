"""One small ``make demo`` per test process, shared by ``tests/ops/test_demo.py`` and
``tests/docs/test_readme.py``: ``python -m ops.demo`` (the Makefile's recipe) as a child
process at :data:`TINY` sizes, in a temp dir removed at exit.

The sizes are about the smallest the sweep takes reliably: 2-hour synthetic days (the
features warm up for 600 s, label horizons reach 600 s, and a fold needs validation rows after
its purge gap), 2 Tune trials, the real recording replayed at 20x.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TINY = ("--day-seconds", "7200", "--num-samples", "2", "--speed", "20")


@dataclass(frozen=True)
class DemoRun:
    """What one demo run left: its exit code, output, OUT dir, ``demo.json`` and transcript."""

    exit_code: int
    output: str
    out: Path
    result: dict[str, Any]
    commands: list[str]

    @property
    def ray_tmp(self) -> str:
        """The demo's ``RAY_TMPDIR`` (from its ``export`` line)."""
        line = next(c for c in self.commands if c.startswith("export RAY_TMPDIR="))
        return line.split("=", 1)[1]


@functools.cache
def tiny_demo() -> DemoRun:
    """Run the demo once per process (failures too: the second caller sees the same run)."""
    root = Path(tempfile.mkdtemp(prefix="nhmm-test-demo-"))
    atexit.register(shutil.rmtree, root, True)
    out = root / "demo_run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_")}
    env["COLUMNS"] = "200"
    done = subprocess.run(
        [sys.executable, "-m", "ops.demo", "--out", str(out), *TINY],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    demo_json = out / "demo.json"
    transcript = out / "commands.sh"
    return DemoRun(
        exit_code=done.returncode,
        output=done.stdout + done.stderr,
        out=out,
        result=json.loads(demo_json.read_text()) if demo_json.is_file() else {},
        commands=transcript.read_text().splitlines() if transcript.is_file() else [],
    )
