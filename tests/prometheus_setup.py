"""A real Prometheus (the Debian ``prometheus`` binary, ``make system``) on loopback for tests."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from serving.testing import free_port
from tests.waiting import wait_for

__all__ = ["run_prometheus"]


@contextlib.contextmanager
def run_prometheus(config: dict[str, Any], workdir: Path) -> Iterator[str]:
    """Prometheus with ``config`` (a prometheus.yml as a dict) and its data in ``workdir``, on
    a free loopback port; yields its URL once ready, stops it (SIGTERM, then SIGKILL) after.
    A missing binary fails the test."""
    binary = shutil.which("prometheus")
    assert binary, "the prometheus binary is required (`make system`: apt-get install prometheus)"
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with (workdir / "prometheus.log").open("w") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/-/ready", timeout=2).status_code == 200, 30, "ready")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
