"""ray_cluster.yaml: valid for Ray's own cluster-config validator, spot workers, metrics port,
and the same pinned versions the tests run with (installed venv, within pyproject ranges)."""

from __future__ import annotations

import copy
import importlib.metadata
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from ray.autoscaler._private.util import prepare_config
from ray.autoscaler._private.util import validate_config

REPO = Path(__file__).resolve().parents[2]
CLUSTER_YAML = REPO / "ray_cluster.yaml"


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


@pytest.fixture(scope="module")
def prepared(raw: dict[str, Any]) -> dict[str, Any]:
    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)
    return config


def _pins(config: dict[str, Any]) -> dict[str, Requirement]:
    """``name -> Requirement`` for every ``name==version`` in the setup commands."""
    pins: dict[str, Requirement] = {}
    for command in config["setup_commands"]:
        for token in shlex.split(command):
            if "==" in token:
                req = Requirement(token)
                pins[canonicalize_name(req.name)] = req
    return pins


def _pinned_version(req: Requirement) -> str:
    (spec,) = req.specifier
    assert spec.operator == "==", req
    return spec.version


def test_validates_with_rays_own_validator(prepared: dict[str, Any]) -> None:
    assert prepared["cluster_name"] == "nautilus-hmm"
    assert prepared["provider"]["type"] == "aws"
    assert prepared["provider"]["region"]
    assert prepared["provider"]["availability_zone"]
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_validator_rejects_a_broken_copy(raw: dict[str, Any]) -> None:
    """Guard that the validator used above really checks this file's structure."""
    broken = copy.deepcopy(raw)
    broken["available_node_types"]["cpu_spot_worker"]["node_confg"] = {}  # typo'd key
    with pytest.raises(jsonschema.ValidationError, match="node_confg"):
        validate_config(prepare_config(broken))
    too_small = copy.deepcopy(raw)
    too_small["available_node_types"]["cpu_spot_worker"]["min_workers"] = 99
    with pytest.raises(ValueError, match="max_workers"):
        validate_config(prepare_config(too_small))


def test_workers_are_autoscaling_spot_and_head_is_on_demand(prepared: dict[str, Any]) -> None:
    types = prepared["available_node_types"]
    head = types[prepared["head_node_type"]]
    workers = {name: t for name, t in types.items() if name != prepared["head_node_type"]}
    assert workers, "no worker node type"
    for name, worker in workers.items():
        assert worker["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot", name
        assert worker["min_workers"] < worker["max_workers"] <= prepared["max_workers"], name
    assert "InstanceMarketOptions" not in head["node_config"]
    assert head["resources"] == {"CPU": 0}  # trials never land on the head


def test_metrics_export_port_and_dashboard(prepared: dict[str, Any]) -> None:
    head_start = " ".join(prepared["head_start_ray_commands"])
    worker_start = " ".join(prepared["worker_start_ray_commands"])
    assert "--metrics-export-port=8080" in head_start
    assert "--metrics-export-port=8080" in worker_start
    assert "--include-dashboard=true" in head_start
    assert "--dashboard-port=8265" in head_start
    assert "--head" in head_start and "--address=$RAY_HEAD_IP:6379" in worker_start


def test_file_mounts_ship_the_checkout_not_data(prepared: dict[str, Any]) -> None:
    assert prepared["file_mounts"] == {"~/nautilus-hmm": "."}
    excluded = set(prepared["rsync_exclude"])
    assert {".venv", ".git", ".env", "model_store", "**/*.parquet"} <= excluded
    assert any("-e ~/nautilus-hmm" in cmd for cmd in prepared["setup_commands"])
    assert any("python3.12 -m venv" in cmd for cmd in prepared["setup_commands"])


def test_ray_pin_is_the_installed_ray(prepared: dict[str, Any]) -> None:
    ray_req = _pins(prepared)["ray"]
    assert _pinned_version(ray_req) == ray.__version__
    assert {"default", "tune", "serve"} <= ray_req.extras


def test_pins_cover_pyproject_and_match_the_lock_and_venv(prepared: dict[str, Any]) -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = {
        canonicalize_name(req.name): req
        for req in map(Requirement, pyproject["project"]["dependencies"])
    }
    locked = {
        canonicalize_name(name): version
        for name, _, version in (
            line.split(" ")[0].partition("==")
            for line in (REPO / "requirements.lock").read_text().splitlines()
            if "==" in line and not line.startswith("#")
        )
    }
    pins = _pins(prepared)
    assert set(pins) == set(deps), "setup_commands pins must list exactly pyproject's deps"
    for name, pin in pins.items():
        version = _pinned_version(pin)
        assert deps[name].specifier.contains(version), f"{name}=={version} vs {deps[name]}"
        assert version == locked[name], f"{name}=={version} differs from requirements.lock"
        assert version == importlib.metadata.version(name), f"{name} differs from the venv"


def test_nodes_run_python_312(prepared: dict[str, Any]) -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"].startswith(">=3.12")
    images = {t["node_config"]["ImageId"] for t in prepared["available_node_types"].values()}
    assert len(images) == 1
    assert re.search(r"ubuntu/server/24\.04", images.pop())  # ships python3.12
