"""``serve run CONFIG`` as a background process: its own port, health-checked, stopped cleanly.

The config is the shipped ``serving/serve_config.yaml`` with another ``http_options.port`` (a
free one), so a demo never collides with a Serve already on :8000. ``serve run`` starts its
own local Ray (``RAY_TMPDIR`` in ``env`` keeps it apart from any other Ray on the machine) and
shuts Serve and that Ray down on Ctrl-C, which :meth:`ServeProcess.stop` sends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.errors import UnavailableError

__all__ = ["SHIPPED_CONFIG", "ServeProcess", "write_serve_config"]

SHIPPED_CONFIG = Path(__file__).resolve().parents[1] / "serving" / "serve_config.yaml"


def write_serve_config(path: Path, port: int, source: Path = SHIPPED_CONFIG) -> Path:
    """``source`` with ``http_options.port`` set to ``port``, written to ``path``."""
    import yaml

    config = yaml.safe_load(source.read_text())
    config.setdefault("http_options", {})["port"] = int(port)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {source.name} with http_options.port = {port} (written by ops.demo)\n"
                    + yaml.safe_dump(config, sort_keys=False))  # fmt: skip
    return path


def _default_sigint() -> None:  # pragma: no cover - runs in the child before exec
    # a parent started in the background may ignore SIGINT; serve run must take Ctrl-C
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class ServeProcess:
    """A running ``serve run CONFIG`` (own session) whose output goes to ``log``."""

    def __init__(self, config: Path, port: int, env: dict[str, str], log: Path, cwd: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        serve_cli = Path(sys.executable).parent / "serve"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(serve_cli), "run", str(config)], env=env, cwd=cwd, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_default_sigint,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _tail(self, n: int = 15) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return ""
        return "\n".join(f"    {line[:200]}" for line in lines)

    def wait_healthy(self, timeout_s: float, tick: Callable[[], Any] = lambda: None) -> float:
        """Poll ``GET /healthz`` until it answers 200; seconds waited. ``tick`` runs each poll.
        Raises :class:`~training.errors.UnavailableError` naming the URL, the last answer and
        the log when Serve exits first or ``timeout_s`` passes."""
        t0 = time.monotonic()
        last = "no answer yet"
        while time.monotonic() - t0 < timeout_s:
            tick()
            if self.proc.poll() is not None:
                raise UnavailableError(
                    f"serve run exited with {self.proc.returncode} before {self.url}/healthz "
                    f"answered; its log {self.log} ends:\n{self._tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as resp:
                    if resp.status == 200:
                        return time.monotonic() - t0
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read()[:200].decode(errors='replace')}"
            except (OSError, urllib.error.URLError) as exc:
                last = type(exc).__name__
            time.sleep(1.0)
        raise UnavailableError(
            f"Serve was not healthy on {self.url}/healthz within {timeout_s:.0f} s (last answer: "
            f"{last}); its log {self.log} ends:\n{self._tail()}"
        )

    def stop(self, timeout_s: float = 90.0) -> int | None:
        """Ctrl-C (serve shuts Serve down, then its Ray); SIGTERM to its process group after
        ``timeout_s``, SIGKILL 15 s later. Returns the exit code."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                return self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    return self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    continue
        return self.proc.poll()
