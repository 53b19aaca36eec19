"""serving/serve_config.yaml is a valid Serve deploy config that builds our application."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from serving.app import AppArgs
from serving.app import build_app
from serving.deployments import DriftServer
from serving.deployments import Ingress
from serving.deployments import PartialFitServer
from serving.drift import DriftConfig

CONFIG = Path(__file__).resolve().parents[2] / "serving" / "serve_config.yaml"


def test_config_validates_offline_and_names_our_app() -> None:
    raw = yaml.safe_load(CONFIG.read_text())
    schema = ServeDeploySchema.model_validate(raw)
    (app,) = schema.applications
    assert app.import_path == "serving.app:build_app" and app.route_prefix == "/"
    args = AppArgs(**app.args)  # every arg is one build_app knows
    assert args.ingress_num_cpus < 1 and not args.auto_adapt
    deployments = {d.name: d for d in app.deployments}
    assert set(deployments) == {Ingress.name, DriftServer.name, PartialFitServer.name}
    for d in deployments.values():
        assert 0 < d.ray_actor_options.num_cpus < 1
    assert deployments["Ingress"].num_replicas == args.ingress_replicas
    assert deployments["Ingress"].ray_actor_options.num_cpus == args.ingress_num_cpus
    # stateful deployments: one replica each
    assert (
        deployments["DriftServer"].num_replicas == deployments["PartialFitServer"].num_replicas == 1
    )


def test_build_app_needs_a_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NHMM_REGISTRY", raising=False)
    with pytest.raises(ValueError, match="registry"):
        build_app({})
    with pytest.raises(ValueError, match="extra"):
        build_app({"registry": str(tmp_path), "bogus": 1})
    monkeypatch.setenv("NHMM_REGISTRY", str(tmp_path))
    assert build_app({}) is not None
    with pytest.raises(ValueError, match="adapt_confidence_factor"):
        build_app({"adapt_confidence_factor": 1.5})


def test_invalid_config_is_refused() -> None:
    raw = yaml.safe_load(CONFIG.read_text())
    raw["applications"][0]["deployments"][0]["num_replicas"] = -1
    with pytest.raises(ValueError, match="num_replicas"):
        ServeDeploySchema.model_validate(raw)


def test_drift_settings_nest_and_flat_keys_still_work() -> None:
    nested = AppArgs(drift={"window": 400, "min_samples": 150, "kl_threshold": 0.3})
    flat = AppArgs(drift_window=400, drift_min_samples=150, kl_threshold=0.3)
    assert nested == flat
    assert flat.drift == DriftConfig(window=400, min_samples=150, kl_threshold=0.3)
    assert AppArgs(drift_window="100").drift.min_samples == 100  # serve run k=v: strings
    assert AppArgs().drift == DriftConfig()
    with pytest.raises(ValueError, match="given both flat and under 'drift'"):
        AppArgs(drift={"window": 400}, drift_window=500)
    with pytest.raises(ValueError, match=r"drift\.window must be >= 10"):
        AppArgs(drift_window=5)
    with pytest.raises(ValueError, match=r"drift\.bogus"):
        AppArgs(drift={"bogus": 1})


def test_shipped_config_leaves_store_and_job_interpreter_to_the_serve_processes() -> None:
    """No ``registry`` (``NHMM_REGISTRY`` decides, as for the CLI) and no ``train_command``
    (the replica's own interpreter: no ``nhmm`` needed on the head's PATH)."""
    (app,) = yaml.safe_load(CONFIG.read_text())["applications"]
    assert "registry" not in app["args"] and "train_command" not in app["args"]
    args = AppArgs(**app["args"])
    assert args.registry is None and args.train_command is None
    assert args.max_body_bytes == 16 * 2**20
    with pytest.raises(ValueError, match="max_body_bytes"):
        AppArgs(max_body_bytes=10)
