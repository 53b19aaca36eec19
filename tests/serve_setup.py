"""Real Serves shared by several test modules, stopped only with their own processes.

- :class:`ServeChild`: :func:`serving.testing.local_serve` in a child process, started without
  waiting, for modules that ask the same application of the same registry.
- :func:`running_serve_head`: a ``ray start --head`` with Serve running, for modules that each
  deploy their own application (``local_serve(..., address=, port=)``) in turn.

A Ray with Serve costs 25-50 s to start and 10 s to stop on the loaded 2-core test machine,
an application 10-25 s. A fixture in the users' package conftest holds one. A test waits for
:attr:`ServeChild.url` only when it needs the answer, so the start overlaps whatever the test
starts first (the live-node tests' nodes); in a child, the Serve's embedded Ray is apart from
any Ray the test process starts and stops itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.testing import free_port
from tests.ray_setup import RayHead
from tests.ray_setup import kill_processes
from tests.ray_setup import process_table
from tests.ray_setup import start_ray_head
from tests.ray_setup import with_descendants

__all__ = ["NEVER_ADAPTS", "ServeChild", "ServeHead", "running_serve_head"]

REPO = Path(__file__).resolve().parents[1]
#: Drift thresholds out of reach: the Serve never reports ``adapting`` (a backtest through it
#: decides exactly as in process, which has no drift monitor).
NEVER_ADAPTS: dict[str, Any] = {"kl_threshold": 1e9, "adwin_delta": 1e-300}


class ServeChild:
    """``local_serve(registry_root, args)`` running in a child process from construction on."""

    def __init__(self, registry_root: str | Path, args: dict[str, Any], timeout_s: float = 300.0):
        self._dir = Path(tempfile.mkdtemp(prefix="nhmm-sc-", dir="/tmp"))  # short: Ray's sockets
        self._url_file = self._dir / "url"
        self.log = self._dir / "serve.log"
        self.timeout_s = timeout_s
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.serve_setup", str(registry_root), json.dumps(args),
                 str(self._url_file)],
                cwd=REPO, env={**os.environ, "RAY_TMPDIR": str(self._dir)}, stdin=subprocess.PIPE,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self._url: str | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` once the application answers (waits for it)."""
        deadline = time.monotonic() + self.timeout_s
        while self._url is None:
            if self._url_file.is_file() and (text := self._url_file.read_text()).endswith("\n"):
                self._url = text.strip()
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"Serve did not start (exit {self.proc.poll()}):\n"
                                     + self.log.read_text()[-4000:])  # fmt: skip
            else:
                time.sleep(0.2)
        return self._url

    def pids(self) -> set[int]:
        """The child, its Ray (every process naming its temp dir) and their descendants."""
        procs = process_table()
        mine = {self.proc.pid} | {pid for pid, (*_, cmd) in procs.items() if str(self._dir) in cmd}
        return with_descendants(mine, procs)

    def stop(self) -> None:
        """End the child's processes (SIGTERM, then SIGKILL): a test needs no graceful Serve
        shutdown (it took over a minute after the live-node tests)."""
        kill_processes(self.pids)
        self.proc.wait()
        subprocess.run(["rm", "-rf", str(self._dir)], check=False)


@dataclass(frozen=True)
class ServeHead:
    """A ``ray start --head`` (dashboard for jobs, metrics export every 0.5 s) and the port its
    Serve answers on: ``local_serve(root, args, address=gcs_address, port=port)``."""

    head: RayHead
    port: int

    @property
    def gcs_address(self) -> str:
        return self.head.gcs_address


@contextlib.contextmanager
def running_serve_head() -> Iterator[ServeHead]:
    """A Ray head for Serve; stopped (its own processes only, Serve with them) on exit."""
    # read by `ray start` through ray_env(); Ray spells its config variables so
    os.environ["RAY_metrics_report_interval_ms"] = "500"  # noqa: SIM112
    try:
        head = start_ray_head()
    finally:
        del os.environ["RAY_metrics_report_interval_ms"]  # noqa: SIM112
    try:
        yield ServeHead(head, free_port())
    finally:
        head.stop()


def _main(registry_root: str, args: str, url_file: str) -> None:
    from serving.testing import local_serve

    with local_serve(registry_root, json.loads(args)) as url:
        Path(url_file).write_text(url + "\n")
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()  # until Ctrl-C, or the test process is gone (EOF)


if __name__ == "__main__":
    _main(*sys.argv[1:])
