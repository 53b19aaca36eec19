"""project_runtime_env: the code goes to the cluster (checked with Ray's own packager), data,
venv and secrets files do not; settings go by value, credentials by name only, Serve's admin
token not at all."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from ray._private import ray_constants
from ray._private.runtime_env.packaging import create_package

import cluster.runtime_env as rte
from cluster import project_runtime_env

REPO = Path(__file__).resolve().parents[2]


def _ray_package(root: Path, runtime_env: dict, out: Path) -> set[str]:
    """The file names Ray would upload for ``runtime_env`` (same excludes Ray applies)."""
    excludes = ray_constants.get_runtime_env_default_excludes() + runtime_env["excludes"]
    create_package(str(root), out, include_gitignore=True, excludes=excludes)
    with zipfile.ZipFile(out) as zf:
        return {name for name in zf.namelist() if not name.endswith("/")}


def _fake_checkout(root: Path) -> Path:
    files = {
        "pyproject.toml": '[project]\nname = "nautilus-hmm"\n',
        "cluster/__init__.py": "",
        "training/cli.py": "x = 1\n",
        "training/data/fixtures/instrument.json.gz": "gz",
        "tests/test_x.py": "",
        "ray_cluster.yaml": "cluster_name: x\n",
        ".venv/lib/site.py": "",
        ".git/HEAD": "ref",
        ".env": "BINANCE_API_SECRET=s3cr3t\n",
        "catalog/data/trade_tick/part-0.parquet": "p",
        "catalogs/x.txt": "c",
        "model_store/v1/manifest.json": "{}",
        "demo_run/report.html": "",
        "bench/results/bench_x.json": "{}",
        "bench/bench_x.py": "",
        "training/__pycache__/cli.cpython-312.pyc": "",
        "training/data/day.parquet": "p",
        "nautilus_hmm.egg-info/PKG-INFO": "",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_working_dir_is_this_checkout() -> None:
    env = project_runtime_env(environ={})
    assert Path(env["working_dir"]) == REPO
    assert "py_modules" not in env
    assert "env_vars" not in env  # nothing to forward from an empty environment


def test_ray_packager_keeps_code_and_drops_data_venv_and_secrets(tmp_path: Path) -> None:
    root = _fake_checkout(tmp_path / "repo")
    env = project_runtime_env(root=root, environ={})
    names = _ray_package(root, env, tmp_path / "pkg.zip")
    assert names == {
        "pyproject.toml",
        "cluster/__init__.py",
        "training/cli.py",
        "training/data/fixtures/instrument.json.gz",
        "tests/test_x.py",
        "ray_cluster.yaml",
        "bench/bench_x.py",
    }


def test_extra_excludes_are_applied(tmp_path: Path) -> None:
    root = _fake_checkout(tmp_path / "repo")
    env = project_runtime_env(root=root, environ={}, extra_excludes=["/tests"])
    names = _ray_package(root, env, tmp_path / "pkg.zip")
    assert "tests/test_x.py" not in names
    assert "training/cli.py" in names


def test_real_checkout_package_is_code_only_and_small(tmp_path: Path) -> None:
    env = project_runtime_env(environ={})
    out = tmp_path / "repo.zip"
    names = _ray_package(REPO, env, out)
    assert {"pyproject.toml", "cluster/connect.py", "training/cli/__init__.py"} <= names
    top = {name.split("/", 1)[0] for name in names}
    assert not top & {".venv", ".git", "model_store", "demo_run", "catalog", "runs"}
    assert not [n for n in names if n.endswith((".parquet", ".pyc"))]
    assert out.stat().st_size < 20 * 1024 * 1024


def test_settings_by_value_credentials_by_name_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NHMM_REGISTRY", "s3://bucket/registry")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-value")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-value")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    monkeypatch.setenv("NHMM_ADMIN_TOKEN", "admin-value")
    monkeypatch.setenv("BINANCE_API_SECRET", "never-forwarded")
    env_vars = project_runtime_env()["env_vars"]
    assert env_vars["NHMM_REGISTRY"] == "s3://bucket/registry"
    assert env_vars["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
    names = env_vars["NHMM_CREDENTIAL_VARS"].split(",")
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} <= set(names)
    shown = repr(project_runtime_env())
    for value in ("AKIAEXAMPLE", "secret-value", "session-value", "admin-value", "never-forwarded"):
        assert value not in shown
    assert (
        "NHMM_ADMIN_TOKEN" not in shown
    )  # the job has no use for Serve's token, not even its name
    assert "HOME" not in env_vars and "PATH" not in env_vars
    assert rte.secret_names(project_runtime_env()) == []


def test_extra_env_wins_and_must_be_strings_not_credentials() -> None:
    env = project_runtime_env({"NHMM_REGISTRY": "/tmp/reg"}, environ={"NHMM_REGISTRY": "s3://a"})
    assert env["env_vars"] == {"NHMM_REGISTRY": "/tmp/reg"}
    with pytest.raises(TypeError, match=r"extra_env\['NHMM_SEED'\]"):
        project_runtime_env({"NHMM_SEED": 7}, environ={})  # type: ignore[dict-item]
    for name in ("AWS_SECRET_ACCESS_KEY", "NHMM_ADMIN_TOKEN", "DB_PASSWORD"):
        with pytest.raises(ValueError, match="credential"):
            project_runtime_env({name: "x"}, environ={})


def test_redacted_copy_hides_values_and_missing_credentials_are_named() -> None:
    env = project_runtime_env({"NHMM_SEED": "abc123"}, environ={"AWS_REGION": "x"})
    shown = rte.redacted(env)
    assert "abc123" not in repr(shown) and set(shown["env_vars"]) == {"NHMM_SEED", "AWS_REGION"}
    assert env["env_vars"]["NHMM_SEED"] == "abc123"  # the original is untouched
    job_env = {"NHMM_CREDENTIAL_VARS": "AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY"}
    assert rte.missing_credentials(job_env) == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    assert rte.missing_credentials({**job_env, "AWS_ACCESS_KEY_ID": "k"}) == [
        "AWS_SECRET_ACCESS_KEY"
    ]
    assert rte.missing_credentials({}) == []


def test_repo_root_needs_the_projects_pyproject(tmp_path: Path) -> None:
    assert rte.repo_root() == REPO
    other = tmp_path / "other"
    (other / "cluster").mkdir(parents=True)
    (other / "pyproject.toml").write_text('[project]\nname = "something-else"\n')
    assert rte.repo_root(other / "cluster" / "runtime_env.py") is None


def test_wheel_install_falls_back_to_py_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rte, "repo_root", lambda start=None: None)
    env = project_runtime_env(environ={})
    assert "working_dir" not in env
    modules = [Path(p) for p in env["py_modules"]]
    assert [m.name for m in modules] == ["cluster", "training", "serving", "node", "ops"]
    assert all((m / "__init__.py").is_file() for m in modules)
