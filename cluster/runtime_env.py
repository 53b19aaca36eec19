"""The Ray ``runtime_env`` that ships this project's code (never its data or venv) to a cluster.

Cluster nodes already have the pinned dependencies installed (``ray_cluster.yaml`` setup
commands), so only the repository's source travels, as a ``working_dir`` package uploaded to
the cluster's GCS. Settings a job needs travel by value (the registry root, the S3 endpoint and
region); credentials never do: Ray writes a job's ``runtime_env`` to its logs and shows it on the
dashboard's job API. The job gets the *names* of the credential variables the submitter used
(``NHMM_CREDENTIAL_VARS``) and reads their values from its own environment: the nodes' instance
profile, or variables the cluster was started with. Serve's ``NHMM_ADMIN_TOKEN`` goes nowhere.
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

#: Settings forwarded by value to every Ray worker and job driver (none of them is a secret).
FORWARDED_ENV_NAMES: tuple[str, ...] = (
    "NHMM_REGISTRY",
    "NHMM_S3_ENDPOINT",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",
)
#: Any other variable with one of these prefixes is a credential: forwarded by name only.
CREDENTIAL_PREFIXES: tuple[str, ...] = ("AWS_",)
#: The variable listing those names (comma-separated) in the job's environment.
CREDENTIAL_VARS_ENV = "NHMM_CREDENTIAL_VARS"

_SECRETISH = re.compile(r"SECRET|TOKEN|PASSWORD|KEY|CREDENTIAL|SESSION", re.IGNORECASE)


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
    """The settings of ``environ`` (default ``os.environ``) that workers get by value.

    >>> forwarded_env({"AWS_REGION": "eu-west-1", "HOME": "/root", "NHMM_REGISTRY": "s3://b/r",
    ...                "AWS_SECRET_ACCESS_KEY": "x", "NHMM_ADMIN_TOKEN": "y"})
    {'AWS_REGION': 'eu-west-1', 'NHMM_REGISTRY': 's3://b/r'}
    """
    env = os.environ if environ is None else environ
    return {name: env[name] for name in sorted(env) if name in FORWARDED_ENV_NAMES}


def credential_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """Names of the credential variables set in ``environ``: what a job's own environment must
    supply (their values are never forwarded).

    >>> credential_names({"AWS_SECRET_ACCESS_KEY": "x", "AWS_REGION": "y", "NHMM_ADMIN_TOKEN": "z"})
    ['AWS_SECRET_ACCESS_KEY']
    """
    env = os.environ if environ is None else environ
    return sorted(
        name
        for name in env
        if name.startswith(CREDENTIAL_PREFIXES) and name not in FORWARDED_ENV_NAMES
    )


def missing_credentials(environ: Mapping[str, str] | None = None) -> list[str]:
    """Credential variables the submitter named (``NHMM_CREDENTIAL_VARS``) that this process's
    environment lacks; fine on nodes with an instance profile, a hint anywhere else.

    >>> missing_credentials({"NHMM_CREDENTIAL_VARS": "AWS_A,AWS_B", "AWS_B": "set"})
    ['AWS_A']
    """
    env = os.environ if environ is None else environ
    names = [n for n in env.get(CREDENTIAL_VARS_ENV, "").split(",") if n]
    return [n for n in names if n not in env]


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
    ``env_vars`` carries :func:`forwarded_env` of ``environ``, the names of its credentials
    (:data:`CREDENTIAL_VARS_ENV`), and ``extra_env``, which may not hold a credential: every
    value here is visible in Ray's logs and dashboard.

    >>> env = project_runtime_env({"NHMM_SEED": "7"}, environ={"AWS_SESSION_TOKEN": "t"})
    >>> sorted(env), env["env_vars"]
    (['env_vars', 'excludes', 'working_dir'], {'NHMM_CREDENTIAL_VARS': 'AWS_SESSION_TOKEN', 'NHMM_SEED': '7'})
    >>> "/.venv" in env["excludes"] and "*.parquet" in env["excludes"]
    True
    """
    env_vars = forwarded_env(environ)
    names = credential_names(environ)
    if names:
        env_vars[CREDENTIAL_VARS_ENV] = ",".join(names)
    for name, value in (extra_env or {}).items():
        if not isinstance(value, str):
            raise TypeError(f"extra_env[{name!r}] must be a str, got {type(value).__name__}")
        if _SECRETISH.search(name) and name != CREDENTIAL_VARS_ENV:
            raise ValueError(
                f"extra_env[{name!r}]: looks like a credential; Ray logs runtime_env values, "
                "so give the cluster its credentials (instance profile, cluster environment)"
            )
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
    """Names in ``env_vars`` that look like credentials (none, for what this module builds).

    >>> secret_names({"env_vars": {"AWS_SECRET_ACCESS_KEY": "x", "AWS_REGION": "y"}})
    ['AWS_SECRET_ACCESS_KEY']
    >>> secret_names(project_runtime_env(environ={"AWS_SECRET_ACCESS_KEY": "x"}))
    []
    """
    return [
        name
        for name in runtime_env.get("env_vars", {})
        if _SECRETISH.search(name) and name != CREDENTIAL_VARS_ENV
    ]


def _installed_packages() -> list[str]:
    import cluster

    site = Path(cluster.__file__).resolve().parents[1]
    return [str(site / pkg) for pkg in ("cluster", "training", "serving", "node", "ops")]
