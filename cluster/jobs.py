"""Submit a shell command as a Ray job (the Python twin of ``ray job submit -- CMD``).

The job's driver runs on the cluster's head node with the project code from
:func:`project_runtime_env`, so ``nhmm sweep ...`` submitted from a laptop runs next to the data.
Settings travel by value, credentials by name only (see :mod:`cluster.runtime_env`).
An entrypoint is a shell command on the head: name the interpreter by absolute path
(:func:`python_command`) rather than rely on the head's ``PATH``.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cluster.runtime_env import project_runtime_env

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


@dataclass(frozen=True)
class JobResult:
    """Outcome of :func:`submit_job`: id, final (or current, with ``wait=False``) status, logs."""

    job_id: str
    status: str
    logs: str
    message: str | None = None

    @property
    def ok(self) -> bool:
        """True when the job finished with ``SUCCEEDED``."""
        return self.status == "SUCCEEDED"

    def raise_for_status(self) -> JobResult:
        """Return self if the job succeeded, else raise with its status and log tail."""
        if not self.ok:
            tail = "\n".join(self.logs.splitlines()[-20:])
            raise RuntimeError(
                f"Ray job {self.job_id} ended {self.status}: {self.message or ''}\n{tail}"
            )
        return self


def dashboard_address(address: str) -> str:
    """The job-API URL for ``address``: ``host:port`` becomes ``http://host:port``.

    >>> dashboard_address("127.0.0.1:8265")
    'http://127.0.0.1:8265'
    >>> dashboard_address("https://ray.example.com/")
    'https://ray.example.com'
    """
    address = address.strip().rstrip("/")
    if not address:
        raise ValueError("submit_job: address must be the Ray dashboard URL, got ''")
    return address if "://" in address else f"http://{address}"


def python_command(module: str, interpreter: str | None = None) -> list[str]:
    """``[interpreter, "-m", module]``: a job entrypoint that does not depend on ``PATH``.

    The default is this process's own interpreter, right for a Serve replica submitting to its
    own cluster (every node runs Ray from the same venv path, ``ray_cluster.yaml``).

    >>> python_command("training.cli", "/opt/venv/bin/python")
    ['/opt/venv/bin/python', '-m', 'training.cli']
    """
    return [interpreter or sys.executable, "-m", module]


def find_job(address: str, job_id: str) -> Any | None:
    """The ``JobDetails`` of the job whose submission id (or job id) is ``job_id`` on the
    cluster whose dashboard is at ``address``; ``None`` when the job server knows no such job."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(dashboard_address(address))
    return next((j for j in client.list_jobs() if job_id in (j.submission_id, j.job_id)), None)


def submit_job(
    entrypoint: str | Sequence[str],
    *,
    address: str,
    runtime_env: dict[str, Any] | None = None,
    wait: bool = True,
    timeout_s: float = 600.0,
    submission_id: str | None = None,
    entrypoint_num_cpus: float | None = None,
    metadata: dict[str, str] | None = None,
    follow: bool = False,
    poll_s: float = 0.5,
) -> JobResult:
    """Submit ``entrypoint`` to the Ray cluster whose dashboard is at ``address``.

    ``runtime_env`` defaults to :func:`project_runtime_env`. With ``wait`` the call polls until
    the job ends; past ``timeout_s`` the job is stopped and ``TimeoutError`` raised. ``follow``
    echoes new log lines to stderr while waiting.
    """
    from ray.job_submission import JobSubmissionClient

    command = entrypoint if isinstance(entrypoint, str) else shlex.join(entrypoint)
    if not command.strip():
        raise ValueError("submit_job: entrypoint is empty")
    if timeout_s <= 0:
        raise ValueError(f"submit_job: timeout_s must be > 0, got {timeout_s}")
    client = JobSubmissionClient(dashboard_address(address))
    job_id = client.submit_job(
        entrypoint=command,
        runtime_env=project_runtime_env() if runtime_env is None else runtime_env,
        submission_id=submission_id,
        entrypoint_num_cpus=entrypoint_num_cpus,
        metadata=metadata,
    )
    if not wait:
        return JobResult(job_id=job_id, status=str(client.get_job_status(job_id).value), logs="")
    return wait_for_job(client, job_id, timeout_s=timeout_s, follow=follow, poll_s=poll_s)


def wait_for_job(
    client: Any, job_id: str, *, timeout_s: float, follow: bool = False, poll_s: float = 0.5
) -> JobResult:
    """Poll ``client`` (a ``JobSubmissionClient``) until ``job_id`` ends or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    shown = 0
    while True:
        status = str(client.get_job_status(job_id).value)
        if follow:
            logs = client.get_job_logs(job_id)
            sys.stderr.write(logs[shown:])
            shown = len(logs)
        if status in TERMINAL:
            info = client.get_job_info(job_id)
            return JobResult(job_id, status, client.get_job_logs(job_id), info.message)
        if time.monotonic() > deadline:
            client.stop_job(job_id)
            tail = "\n".join(client.get_job_logs(job_id).splitlines()[-20:])
            raise TimeoutError(
                f"Ray job {job_id} still {status} after {timeout_s:g}s; stop requested.\n{tail}"
            )
        time.sleep(poll_s)
