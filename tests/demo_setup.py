"""One small ``make demo`` per test process, shared by ``tests/ops/test_demo.py`` and
``tests/docs/test_readme.py``: ``python -m ops.demo`` (the Makefile's recipe) as a child
process at :data:`TINY` sizes, in a temp dir removed at exit.

The sizes are about the smallest the sweep takes reliably: 2-hour synthetic search days (the
features warm up for 600 s, label horizons reach 600 s, and a fold needs validation rows after
its purge gap), a 30-minute held-out day (20 minutes of samples after the warm-up: the Serve
backtest asks once per sampled second, about 100 s for a 2-hour day), 2 Tune trials, the real
recording replayed at 40x (the node asks Serve off its event loop, so it keeps up).

:func:`start_tiny_demo` starts it without waiting, so a test can run its own work beside it
(the README's paper nodes, once :func:`wait_for_live_model`); :func:`tiny_demo` waits for it.
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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TINY = ("--day-seconds", "7200", "--held-out-seconds", "1800", "--num-samples", "2",
        "--speed", "40")  # fmt: skip


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


@dataclass(frozen=True)
class _Started:
    proc: subprocess.Popen[bytes]
    out: Path
    stdout: Path
    stderr: Path
    t0: float


@functools.cache
def _start() -> _Started:
    root = Path(tempfile.mkdtemp(prefix="nhmm-test-demo-"))
    atexit.register(shutil.rmtree, root, True)
    out = root / "demo_run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_")}
    env["COLUMNS"] = "200"
    stdout, stderr = root / "stdout.txt", root / "stderr.txt"
    with stdout.open("wb") as o, stderr.open("wb") as e:
        proc = subprocess.Popen([sys.executable, "-m", "ops.demo", "--out", str(out), *TINY],
                                cwd=REPO, env=env, stdout=o, stderr=e)  # fmt: skip
    atexit.register(lambda: proc.poll() is None and proc.kill())
    return _Started(proc, out, stdout, stderr, time.monotonic())


def start_tiny_demo() -> Path:
    """Start the demo (once per process) without waiting for it; returns its OUT dir."""
    return _start().out


def wait_for_live_model(timeout_s: float = 900.0) -> bool:
    """Wait until the running demo's registry has a ``live`` model (after its promote step);
    False if the demo ended without one."""
    started = _start()
    live = started.out / "model_store" / "aliases" / "live.json"
    deadline = started.t0 + timeout_s
    while not live.is_file():
        if started.proc.poll() is not None or time.monotonic() > deadline:
            return live.is_file()
        time.sleep(0.5)
    return True


@functools.cache
def tiny_demo() -> DemoRun:
    """Run the demo once per process (failures too: the second caller sees the same run)."""
    started = _start()
    try:
        started.proc.wait(timeout=max(1.0, started.t0 + 900 - time.monotonic()))
    except subprocess.TimeoutExpired:
        started.proc.kill()
        started.proc.wait()
        raise
    demo_json = started.out / "demo.json"
    transcript = started.out / "commands.sh"
    return DemoRun(
        exit_code=started.proc.returncode,
        output=started.stdout.read_text() + started.stderr.read_text(),
        out=started.out,
        result=json.loads(demo_json.read_text()) if demo_json.is_file() else {},
        commands=transcript.read_text().splitlines() if transcript.is_file() else [],
    )
