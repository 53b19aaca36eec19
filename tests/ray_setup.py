"""Real Ray instances for tests, stopped by killing exactly their own processes.

:func:`start_ray_head` starts a separate Ray with the real ``ray start --head`` CLI (own temp
dir, every port free-picked, dashboard on 127.0.0.1 for job submission); :meth:`RayHead.stop`
ends only its processes — never ``ray stop``, which would kill every Ray on the machine.
Used by the cluster fixtures (``tests/cluster/conftest.py``) and by the Serve tests that need a
dashboard and a metrics port.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from serving.testing import free_port

__all__ = [
    "HEAD_CPUS",
    "RAY_CLI",
    "TERM_GRACE_S",
    "VENV_BIN",
    "WORKER_NODES",
    "RayHead",
    "free_port",
    "kill_processes",
    "process_table",
    "ray_env",
    "start_ray_head",
    "with_descendants",
]

VENV_BIN = Path(sys.executable).parent
RAY_CLI = str(VENV_BIN / "ray")
HEAD_CPUS = 2
WORKER_NODES = 2
#: SIGTERM grace before SIGKILL: a Ray's daemons that exit on SIGTERM do so within 1 s; its GCS
#: server and a few more never do (measured: 16 of 19 head processes gone in 1 s, the rest still
#: there after 10 s), so a longer wait only delayed every teardown.
TERM_GRACE_S = 1.0


def ray_env(**extra: str) -> dict[str, str]:
    """Environment for Ray CLI subprocesses: this venv first on PATH, token auth disabled."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_AUTH_MODE"] = "disabled"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.setdefault("RAY_raylet_start_wait_time_s", "60")  # a busy host registers slowly
    env.pop("RAY_ADDRESS", None)
    env.update(extra)
    return env


@dataclass
class RayHead:
    """A running ``ray start --head`` instance: how to reach it and how to stop only it."""

    gcs_address: str
    dashboard_url: str
    temp_dir: Path
    pgid: int
    ports: dict[str, int]
    stopped: bool = field(default=False)

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a CLI subprocess talking to this instance (``ray job submit``)."""
        return ray_env(RAY_API_SERVER_ADDRESS=self.dashboard_url, **extra)

    def pids(self) -> set[int]:
        """Every live process of this instance: its process group, their descendants, and any
        process naming its temp dir (workers lead their own process group)."""
        procs = process_table()
        mine = {pid for pid, (_, pgid, _, cmd) in procs.items() if pgid == self.pgid}
        mine |= {pid for pid, (_, _, _, cmd) in procs.items() if str(self.temp_dir) in cmd}
        return with_descendants(mine, procs)

    def stop(self, timeout_s: float = TERM_GRACE_S) -> None:
        """SIGTERM every process of this instance, SIGKILL what is left, remove its temp dir."""
        if self.stopped:
            return
        self.stopped = True
        kill_processes(lambda: self.pids(), timeout_s)
        subprocess.run(["rm", "-rf", str(self.temp_dir)], check=False)


def start_ray_head(
    num_cpus: int = HEAD_CPUS, timeout_s: float = 120.0, env: dict[str, str] | None = None
) -> RayHead:
    """Start a second Ray instance with the real ``ray start --head`` CLI; wait for its dashboard.

    ``env`` is added to the instance's environment (what its workers, Serve replicas and job
    drivers inherit), e.g. a ``PATH`` without this venv or credentials the cluster holds.
    """
    temp_dir = Path(tempfile.mkdtemp(prefix="nhmm-ray-", dir="/tmp"))  # short: unix socket paths
    names = (
        "port",
        "dashboard-port",
        "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port",
        "metrics-export-port",
        "ray-client-server-port",
        "node-manager-port",
        "object-manager-port",
        "runtime-env-agent-port",
    )
    ports: dict[str, int] = {}
    while len(ports) < len(names):  # distinct ports
        port = free_port()
        if port not in ports.values():
            ports[names[len(ports)]] = port
    cmd = [
        RAY_CLI,
        "start",
        "--head",
        f"--num-cpus={num_cpus}",
        "--object-store-memory=200000000",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
        *(f"--{name}={port}" for name, port in ports.items()),
    ]
    # A new session makes this instance's daemons one process group (id = the CLI's pid) that
    # outlives the CLI and that we can signal alone.
    proc = subprocess.Popen(
        cmd,
        env=ray_env(**(env or {})),
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    head = RayHead(
        gcs_address=f"127.0.0.1:{ports['port']}",
        dashboard_url=f"http://127.0.0.1:{ports['dashboard-port']}",
        temp_dir=temp_dir,
        pgid=proc.pid,
        ports=ports,
    )
    atexit.register(head.stop)
    try:
        _, stderr = proc.communicate(timeout=timeout_s)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start --head failed ({proc.returncode}):\n{stderr[-3000:]}")
        _wait_for_dashboard(head.dashboard_url, timeout_s)
    except BaseException:
        proc.kill()
        head.stop()
        raise
    return head


def process_table() -> dict[int, tuple[int, int, int, str]]:
    """``pid -> (ppid, pgid, start time, cmdline)`` for every live process in /proc."""
    table: dict[int, tuple[int, int, int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            continue
        table[int(entry.name)] = (int(fields[1]), int(fields[2]), int(fields[19]), cmd)
    return table


def with_descendants(pids: set[int], procs: dict[int, tuple[int, int, int, str]]) -> set[int]:
    found = set(pids) & set(procs)
    while True:
        kids = {pid for pid, (ppid, *_) in procs.items() if ppid in found} - found
        if not kids:
            break
        found |= kids
    found.discard(os.getpid())
    return found


def kill_processes(find: Callable[[], set[int]], timeout_s: float = TERM_GRACE_S) -> None:
    """SIGTERM the processes ``find()`` names (re-asked until they are gone), then SIGKILL
    what is left after ``timeout_s``.

    A pid is tracked with its start time so a recycled pid is never signalled.
    """
    procs = process_table()
    tracked = {(pid, procs[pid][2]) for pid in find() if pid in procs}

    def alive() -> set[int]:
        table = process_table()
        tracked.update((pid, table[pid][2]) for pid in find() if pid in table)
        return {pid for pid, start in tracked if pid in table and table[pid][2] == start}

    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        _signal_all(alive(), sig)
        deadline = time.monotonic() + wait_s
        while alive() and time.monotonic() < deadline:
            time.sleep(0.2)


def _signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_for_dashboard(url: str, timeout_s: float) -> None:
    """Wait until the dashboard's job API answers (it starts after ``ray start`` returns)."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=5) as resp:
                json.loads(resp.read())
            with urllib.request.urlopen(f"{url}/api/jobs/", timeout=5) as resp:
                json.loads(resp.read())
            return
        except Exception as exc:
            last = exc
            time.sleep(0.5)
    raise TimeoutError(f"Ray dashboard at {url} not ready after {timeout_s:g}s: {last}")
