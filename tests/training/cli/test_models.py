"""``nhmm models list|show|promote|rollback`` through click's CliRunner on a real local registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.bundle_setup import make_bundle
from tests.bundle_setup import policy_bytes
from training.artifacts.registry import Registry
from training.cli import main
from training.cli.models import models


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """A registry with two versions: v1 (sweep s1) and v2 (child of v1, the candidate)."""
    root = str(tmp_path_factory.mktemp("cli") / "store")
    reg = Registry(root)
    policy = policy_bytes()
    v1 = reg.register(make_bundle(1, policy=policy, code_version="t"), sweep_id="s1")
    v2 = reg.register(make_bundle(2, policy=policy, code_version="t"), parent=v1)
    return root, [v1, v2]


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(models, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_list_table_and_json(store: tuple[str, list[str]]) -> None:
    root, (v1, v2) = store
    code, out = run("list", "--registry", root)
    assert code == 0
    assert v1 in out and v2 in out and "candidate" in out and "sharpe=1.25" in out
    assert out.index(v1) < out.index(v2)
    code, out = run("list", "--json", "--registry", root)
    rows = json.loads(out)
    assert [r["version"] for r in rows] == [v1, v2]
    assert rows[1]["aliases"] == ["candidate"] and rows[1]["parent"] == v1
    assert rows[0]["sweep_id"] == "s1" and rows[0]["metrics"]["n_trades"] == 42


def test_show_by_alias_number_and_id(store: tuple[str, list[str]]) -> None:
    root, (v1, v2) = store
    code, out = run("show", "candidate", "--registry", root)
    assert code == 0
    assert v2 in out and f"{v2} <- {v1}" in out and "FEATURES_V1 (10 features)" in out
    assert "metric sharpe" in out and "min_conf" in out
    code, out = run("show", "v1", "--json", "--registry", root)
    detail = json.loads(out)
    assert detail["version"] == v1 and detail["lineage"] == [v1]
    assert detail["hmm_arrays"]["transmat"] == [3, 3] and detail["schema_version"] == "FEATURES_V1"
    assert detail["thresholds"]["min_conf"] == 0.6
    code, out = run("show", "nope", "--registry", root)
    assert code == 1 and "unknown model ref 'nope'" in out


def test_promote_and_rollback(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    reg = Registry(root)
    policy = policy_bytes()
    v1 = reg.register(make_bundle(1, policy=policy))
    env = {"NHMM_REGISTRY": root}
    code, out = run("promote", env=env)  # defaults: candidate -> live, registry from env
    assert code == 0 and out.strip() == f"live: (unset) -> {v1}"
    v2 = reg.register(make_bundle(2, policy=policy))
    code, out = run("promote", "candidate", "--alias", "live", env=env)
    assert out.strip() == f"live: {v1} -> {v2}"
    assert Registry(root).aliases() == {"candidate": v2, "live": v2}
    code, out = run("rollback", env=env)
    assert code == 0 and out.strip() == f"live: {v2} -> {v1} (rolled back)"
    assert Registry(root).resolve("live") == v1
    code, out = run("rollback", "--registry", root)
    assert code == 1 and "no earlier version to roll back to" in out
    code, out = run("promote", "v9", "--registry", root)
    assert code == 1 and "unknown model ref 'v9'" in out


def test_registry_option_overrides_env(store: tuple[str, list[str]], tmp_path: Path) -> None:
    root, (v1, v2) = store
    env = {"NHMM_REGISTRY": str(tmp_path / "empty")}
    code, out = run("list", "--json", env=env)
    assert code == 0 and json.loads(out) == []
    code, out = run("list", "--json", "--registry", root, env=env)
    assert [r["version"] for r in json.loads(out)] == [v1, v2]


def test_nhmm_root_command_reaches_models(store: tuple[str, list[str]]) -> None:
    root, (_, v2) = store
    result = CliRunner().invoke(main, ["models", "show", "candidate", "--json", "--registry", root])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["version"] == v2


def test_nhmm_root_shows_registry_errors_as_one_line(store: tuple[str, list[str]]) -> None:
    root, _ = store
    result = CliRunner().invoke(main, ["models", "show", "nope", "--registry", root])
    assert result.exit_code == 2
    (line,) = result.output.splitlines()
    assert line.startswith("Error: unknown model ref 'nope'")
    result = CliRunner().invoke(main, ["models", "rollback", "--registry", root])
    assert result.exit_code == 2 and "nothing to roll back" in result.output
