"""The Ray ``runtime_env`` that ships this project's code (never its data or venv) to a cluster.

Cluster nodes already have the pinned dependencies installed (``ray_cluster.yaml`` setup
commands), so only the repository's source travels, as a ``working_dir`` package uploaded to
the cluster's GCS. Secrets are forwarded by *name* from the submitter's environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROJECT_NAME = "nautilus-hmm"

#: gitignore-style patterns, relative to the repo root, never uploaded to a cluster.
DEFAULT_EXCLUDES: tuple[str, ...] = (
    "/.git",
    "/.venv",
    "/venv",
    ".env",
    ".env.*",
    "__pycache__/",
    "*.pyc",
    "*.egg-info/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".mypy_cache/",
    ".hypothesis/",
    ".ipynb_checkpoints/",
    "/build",
    "/dist",
    "*.whl",
    "/catalog",
    "/catalogs",
    "/model_store",
    "/demo_run",
    "/runs",
    "/bench/results",
    "*.parquet",
    "*.feather",
    "*.arrow",
    "*.log",
)

#: Environment variable names (exact) forwarded to every Ray worker and job driver.
FORWARDED_ENV_NAMES: tuple[str, ...] = ("NHMM_REGISTRY",)
#: Environment variable prefixes forwarded to every Ray worker and job driver.
FORWARDED_ENV_PREFIXES: tuple[str, ...] = ("NHMM_", "AWS_")

_SECRETISH = re.compile(r"SECRET|TOKEN|PASSWORD|KEY", re.IGNORECASE)


def repo_root(start: Path | None = None) -> Path | None:
    """The nautilus-hmm checkout this code runs from, or ``None`` for a wheel install.

    Found as the parent of the ``cluster`` package holding a ``pyproject.toml`` that names the
    project; inside a Ray job this is the unpacked ``working_dir``, so nested submits work too.
    """
    here = (start or Path(__file__)).resolve()
    for candidate in (here, *here.parents):
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file() and (candidate / "cluster").is_dir():
            text = pyproject.read_text(encoding="utf-8")
            if re.search(rf'^name\s*=\s*"{re.escape(PROJECT_NAME)}"', text, re.MULTILINE):
                return candidate
    return None


def forwarded_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The subset of ``environ`` (default ``os.environ``) that workers need: NHMM_* and AWS_*.

    >>> forwarded_env({"AWS_REGION": "eu-west-1", "HOME": "/root", "NHMM_REGISTRY": "s3://b/r"})
    {'AWS_REGION': 'eu-west-1', 'NHMM_REGISTRY': 's3://b/r'}
    """
    env = os.environ if environ is None else environ
    return {
        name: env[name]
        for name in sorted(env)
        if name in FORWARDED_ENV_NAMES or name.startswith(FORWARDED_ENV_PREFIXES)
    }


def project_runtime_env(
    extra_env: Mapping[str, str] | None = None,
    *,
    extra_excludes: Iterable[str] = (),
    root: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A ``runtime_env`` dict shipping the project source to Ray workers and job drivers.

    ``working_dir`` is the repo root minus :data:`DEFAULT_EXCLUDES` (and ``.gitignore``, which
    Ray honours); on a wheel install without a checkout the packages go as ``py_modules``.
    ``env_vars`` carries NHMM_* / AWS_* from ``environ`` plus ``extra_env``. These values are
    visible in the Ray dashboard: on EC2 prefer the instance profile to AWS keys.

    >>> env = project_runtime_env({"NHMM_SEED": "7"}, environ={})
    >>> sorted(env), env["env_vars"]
    (['env_vars', 'excludes', 'working_dir'], {'NHMM_SEED': '7'})
    >>> "/.venv" in env["excludes"] and "*.parquet" in env["excludes"]
    True
    """
    env_vars = forwarded_env(environ)
    for name, value in (extra_env or {}).items():
        if not isinstance(value, str):
            raise TypeError(f"extra_env[{name!r}] must be a str, got {type(value).__name__}")
        env_vars[name] = value
    excludes = [*DEFAULT_EXCLUDES, *extra_excludes]
    base = root if root is not None else repo_root()
    runtime_env: dict[str, Any]
    if base is not None:
        runtime_env = {"working_dir": str(base), "excludes": excludes}
    else:
        runtime_env = {"py_modules": _installed_packages(), "excludes": excludes}
    if env_vars:
        runtime_env["env_vars"] = env_vars
    return runtime_env


def redacted(runtime_env: Mapping[str, Any]) -> dict[str, Any]:
    """A copy safe to log: every ``env_vars`` value becomes ``***`` (names are kept).

    >>> redacted({"working_dir": "/w", "env_vars": {"AWS_SECRET_ACCESS_KEY": "abc"}})
    {'working_dir': '/w', 'env_vars': {'AWS_SECRET_ACCESS_KEY': '***'}}
    """
    out = dict(runtime_env)
    if "env_vars" in out:
        out["env_vars"] = dict.fromkeys(out["env_vars"], "***")
    return out


def secret_names(runtime_env: Mapping[str, Any]) -> list[str]:
    """Names of forwarded variables that look like credentials (for a warning, not a block).

    >>> secret_names({"env_vars": {"AWS_SECRET_ACCESS_KEY": "x", "AWS_REGION": "y"}})
    ['AWS_SECRET_ACCESS_KEY']
    """
    return [name for name in runtime_env.get("env_vars", {}) if _SECRETISH.search(name)]


def _installed_packages() -> list[str]:
    import cluster

    site = Path(cluster.__file__).resolve().parents[1]
    return [str(site / pkg) for pkg in ("cluster", "training", "serving", "node", "ops")]
