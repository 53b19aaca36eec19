"""Run ``python node/run.py`` as a child process (a real node: its own Nautilus kernel, signals,
exit code) and scrape its metrics port every 0.5 s while it runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import httpx

from tests.ray_setup import free_port

REPO = Path(__file__).resolve().parents[3]
RUN_PY = REPO / "node" / "run.py"


@dataclass
class NodeProcess:
    """A running node; ``scrapes`` holds every successful ``/metrics`` body."""

    proc: subprocess.Popen[str]
    port: int
    scrapes: list[str] = field(default_factory=list)
    output: str = ""
    log: Path | None = None
    _reader: threading.Thread | None = None
    _lines: list[str] = field(default_factory=list)

    def _scrape_all(self) -> None:
        while self.proc.poll() is None:
            self.scrape()
            time.sleep(0.5)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append(line)

    def scrape(self) -> str | None:
        try:
            body = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return None
        self.scrapes.append(body)
        return body

    @property
    def lines(self) -> list[str]:
        """The output so far."""
        return list(self._lines)

    def wait_for(self, cond: Callable[[str], bool], timeout_s: float) -> bool:
        """Wait until the latest scrape satisfies ``cond`` (or the process ends, or ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.scrapes and cond(self.scrapes[-1]):
                return True
            time.sleep(0.25)
        return False

    def finish(self, timeout_s: float) -> int:
        """Wait for the exit (scraping meanwhile); SIGKILL after ``timeout_s``."""
        self.wait_for(lambda _: False, timeout_s)
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait(30)
        if self._reader is not None:
            self._reader.join(10)
        self.output = "".join(self._lines)
        if self.log is not None:
            self.log.write_text(self.output)
        return code

    def kill9(self) -> int:
        self.proc.send_signal(signal.SIGKILL)
        return self.finish(30)


def start_node(
    args: list[str], env: dict[str, str], cwd: Path, log: Path | None = None
) -> NodeProcess:
    """``python node/run.py ARGS --metrics-port P`` with ``env`` added to a clean environment
    (no inherited Binance keys or TRADING_ENABLED), stdout and stderr merged (and written to
    ``log`` at the end, if given)."""
    port = free_port()
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("BINANCE_") and k != "TRADING_ENABLED"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, str(RUN_PY), *args, "--metrics-port", str(port)],
        env={**base, **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    node = NodeProcess(proc, port, log=log)
    node._reader = threading.Thread(target=node._read, daemon=True)
    node._reader.start()
    threading.Thread(target=node._scrape_all, daemon=True).start()  # every 0.5 s while it runs
    return node


def metric(body: str, name: str) -> float:
    """The sum of every sample of ``name`` (all label sets) in a Prometheus text body."""
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total
