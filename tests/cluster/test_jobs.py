"""submit_job() and the real ``ray job submit`` CLI against a ``ray start --head`` instance: the
job's driver imports the project from the shipped working_dir, failures and timeouts surface."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from ray.job_submission import JobStatus
from ray.job_submission import JobSubmissionClient

from cluster import JobResult
from cluster import find_job
from cluster import project_runtime_env
from cluster import submit_job
from cluster.jobs import dashboard_address
from cluster.jobs import wait_for_job

pytestmark = pytest.mark.slow

# Prints where the project's packages were imported from, and a forwarded variable.
PROBE = (
    "import os, cluster, training, training.cli; "
    "print('CLUSTER_AT', cluster.__file__); print('TRAINING_AT', training.__file__); "
    "print('REGISTRY', os.environ.get('NHMM_REGISTRY')); "
    "print('CLI', type(training.cli.main).__name__)"
)


def _lines(logs: str, key: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in logs.splitlines() if line.startswith(f"{key} ")]


def _assert_code_from_working_dir(logs: str, temp_dir: str) -> None:
    for key in ("CLUSTER_AT", "TRAINING_AT"):
        (path,) = _lines(logs, key)
        assert path.startswith(temp_dir) and "working_dir_files" in path, (key, path)


def test_dashboard_address_and_argument_checks() -> None:
    assert dashboard_address(" 10.0.0.1:8265/ ") == "http://10.0.0.1:8265"
    with pytest.raises(ValueError, match="address"):
        dashboard_address("")
    with pytest.raises(ValueError, match="entrypoint"):
        submit_job("  ", address="127.0.0.1:1")
    with pytest.raises(ValueError, match="timeout_s"):
        submit_job("true", address="127.0.0.1:1", timeout_s=0)


def test_job_result_raise_for_status() -> None:
    ok = JobResult("raysubmit_1", "SUCCEEDED", "fine\n")
    assert ok.ok and ok.raise_for_status() is ok
    failed = JobResult("raysubmit_2", "FAILED", "a\nTraceback: boom\n", "exit code 3")
    with pytest.raises(RuntimeError, match=r"raysubmit_2 ended FAILED: exit code 3\n(.|\n)*boom"):
        failed.raise_for_status()


def test_submit_job_ships_the_project_and_reports_failures(
    ray_head: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NHMM_REGISTRY", "s3://nhmm-test/registry")
    address = ray_head.dashboard_url  # type: ignore[attr-defined]
    # The failing job runs concurrently with the good one: submitted without waiting.
    failing = submit_job(
        ["python", "-c", "import sys, cluster; print('about to fail'); sys.exit(3)"],
        address=address,
        wait=False,
    )
    assert failing.status in {"PENDING", "RUNNING"} and failing.logs == ""

    # As `nhmm sweep` will: connect() inside the job reaches the job's cluster, with its code.
    probe_connect = (
        f"{PROBE}; import ray; info = cluster.connect(); print('MODE', info.mode, info.cpus); "
        "print('TASK_AT', ray.get(ray.remote(lambda: __import__('training').__file__).remote()))"
    )
    good = submit_job(["python", "-c", probe_connect], address=address, timeout_s=240)
    assert good.status == "SUCCEEDED", good.logs
    _assert_code_from_working_dir(good.logs, str(ray_head.temp_dir))  # type: ignore[attr-defined]
    assert _lines(good.logs, "REGISTRY") == ["s3://nhmm-test/registry"]
    assert _lines(good.logs, "CLI") == ["LazyGroup"]
    assert _lines(good.logs, "MODE") == ["remote 2.0"]
    (task_at,) = _lines(good.logs, "TASK_AT")
    assert task_at.startswith(str(ray_head.temp_dir)) and "working_dir_files" in task_at  # type: ignore[attr-defined]

    done = wait_for_job(JobSubmissionClient(address), failing.job_id, timeout_s=240)
    assert done.status == "FAILED" and not done.ok
    assert "about to fail" in done.logs
    assert "3" in (done.message or "")
    with pytest.raises(RuntimeError, match="ended FAILED"):
        done.raise_for_status()


def test_submit_job_timeout_stops_the_job(ray_head: object) -> None:
    address = ray_head.dashboard_url  # type: ignore[attr-defined]
    sid = f"nhmm-timeout-{uuid.uuid4().hex[:8]}"
    with pytest.raises(TimeoutError, match=sid):
        submit_job("sleep 120", address=address, submission_id=sid, timeout_s=1.0)
    client = JobSubmissionClient(address)
    assert wait_for_job(client, sid, timeout_s=120).status == "STOPPED"


def test_ray_job_submit_cli_runs_the_project(ray_head: object) -> None:
    """The user's command: ``ray job submit --runtime-env-json ... -- python ...``."""
    address = ray_head.dashboard_url  # type: ignore[attr-defined]
    sid = f"nhmm-cli-{uuid.uuid4().hex[:8]}"
    runtime_env = project_runtime_env({"NHMM_REGISTRY": "s3://nhmm-test/cli"})
    cmd = [
        "ray",
        "job",
        "submit",
        "--address",
        address,
        "--submission-id",
        sid,
        "--runtime-env-json",
        json.dumps(runtime_env),
        "--",
        "python",
        "-c",
        PROBE,  # the CLI shlex-joins the arguments after --
    ]
    proc = subprocess.run(
        cmd,
        env=ray_head.env(),  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"Job '{sid}' succeeded" in proc.stdout + proc.stderr
    assert _lines(proc.stdout, "REGISTRY") == ["s3://nhmm-test/cli"]
    client = JobSubmissionClient(address)
    assert client.get_job_status(sid) == JobStatus.SUCCEEDED
    _assert_code_from_working_dir(client.get_job_logs(sid), str(ray_head.temp_dir))  # type: ignore[attr-defined]


def test_find_job_knows_submitted_jobs_only(ray_head: object) -> None:
    address = ray_head.dashboard_url  # type: ignore[attr-defined]
    job = submit_job("true", address=address, runtime_env={}, wait=False)
    found = find_job(address, job.job_id)
    assert found is not None and found.submission_id == job.job_id
    assert find_job(address, "raysubmit_nosuchjob") is None
