"""``PolicyHMMStrategy`` in a real BacktestEngine with a model trained on earlier synthetic days."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import pyarrow.parquet as pq
import pytest

from node.backtest import run_backtest
from node.config import PolicyHMMStrategyConfig
from node.inference import InProcessModel
from training.data.catalog import MarketCatalog
from training.data.synth import SynthConfig, synth
from training.features import FeatureSchema, schema_for
from training.features_offline import extract_features, z_columns
from training.hmm import ForwardFilter, HMMConfig
from training.labels import LabelConfig
from training.policy import PolicyConfig
from training.registry import Registry
from training.train import TrainConfig, build_bundle, evaluate_model, fit_model, load_feature_sets

#: Synthetic prices barely move in bp, so labels carry no fee and thresholds are low enough for
#: the policy to decide buy/sell.
TRAIN = TrainConfig(
    hmm=HMMConfig(k_range=(3, 3), covariance_type="diag", n_init=1),
    labels=LabelConfig(fee_bps=0.0, horizon_s=30.0),
    policy=PolicyConfig(buy_threshold=0.34, sell_threshold=0.34, n_estimators=30),
)
SCHEMA = schema_for("spot", min_periods_s=120.0, standardise_window_s=600.0)
LOOSE = PolicyHMMStrategyConfig(
    instrument_id="BTCUSDT.BINANCE",
    min_conf=0.5,
    max_spread_bp_base=5.0,
    vwap_anchor_bps=50.0,
    max_position=0.01,
    cooldown_s=5.0,
)


def train_and_register(
    catalog: MarketCatalog, symbol: str, days: list, registry_root: Path, schema: FeatureSchema
) -> Registry:
    """Fit on ``days`` (all but the last: the last is the evaluation day), register as
    ``candidate``."""
    schema, train_set, holdout = load_feature_sets(catalog, symbol, days, schema=schema)
    model = fit_model(train_set, schema, TRAIN)
    bundle = build_bundle(model, schema, train_set, TRAIN, evaluate_model(model, holdout, TRAIN))
    registry = Registry(str(registry_root))
    registry.register(bundle)
    return registry


def make_synth_setup(root: Path) -> tuple[MarketCatalog, Registry]:
    """Three 30-minute synthetic days; the model is trained on the first two."""
    synth(SynthConfig(days=3, seed=1, day_seconds=1800), root / "catalog")
    catalog = MarketCatalog(root / "catalog")
    days = [sd.day for sd in catalog.symbol_days("BTCUSDT")]
    return catalog, train_and_register(catalog, "BTCUSDT", days[:2], root / "registry", SCHEMA)


@pytest.fixture(scope="module")
def synth_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[MarketCatalog, Registry]:
    return make_synth_setup(tmp_path_factory.mktemp("node_synth"))


def test_decisions_follow_the_offline_filtered_posterior_and_submit_nothing_when_disabled(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    catalog, registry = synth_setup
    day = catalog.symbol_days("BTCUSDT")[-1].day
    summary = run_backtest(catalog, "BTCUSDT", [day], "candidate", registry, tmp_path, LOOSE)
    timeline = pq.read_table(tmp_path / "timeline.parquet")
    # the online posterior is the causal forward filter over the offline features of the day
    offline = extract_features(catalog, "BTCUSDT", day, SCHEMA)
    ready = offline["ready"].to_numpy(zero_copy_only=False) & offline["book_ok"].to_numpy(
        zero_copy_only=False
    )
    X = np.column_stack([offline[c].to_numpy() for c in z_columns(SCHEMA)])[ready]
    run = ForwardFilter(registry.load("candidate").hmm_params()).run(X)
    assert timeline.num_rows == len(X) > 1000
    np.testing.assert_array_equal(timeline["ts"].to_numpy(), offline["ts"].to_numpy()[ready])
    posterior = np.array(timeline["posterior"].to_pylist())
    np.testing.assert_allclose(posterior, run.posteriors, atol=1e-9)
    np.testing.assert_array_equal(timeline["state"].to_numpy(), run.states)
    # decisions happen, pass through the guardrails and are logged, but nothing is submitted
    assert summary["decisions"] > 100 and summary["entries"] > 10
    assert summary["orders_submitted"] == 0 and summary["trades"] == 0.0
    entries = pq.read_table(tmp_path / "entries.parquet")
    assert not any(entries["submitted"].to_pylist())
    assert len(entries["features"][0].as_py()) == len(SCHEMA.names)
    counts = json.loads((tmp_path / "guardrails.json").read_text())
    assert counts["OK"] == summary["entries"]
    assert counts["COOLDOWN"] > 0
    blocks = pq.read_table(tmp_path / "blocks.parquet")
    assert blocks.num_rows == sum(v for k, v in counts.items() if k != "OK")
    assert set(blocks["reason"].to_pylist()) <= {k for k, v in counts.items() if v}


def test_tripped_kill_switch_blocks_every_decision(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    catalog, registry = synth_setup
    day = catalog.symbol_days("BTCUSDT")[-1].day
    (tmp_path / "kill_switch.json").write_text(json.dumps({"tripped": True, "reason": "manual"}))
    cfg = msgspec.structs.replace(LOOSE, trading_enabled=True)
    summary = run_backtest(catalog, "BTCUSDT", [day], "candidate", registry, tmp_path, cfg)
    counts = summary["guardrails"]
    assert counts["KILL"] == summary["decisions"] > 100
    assert counts["OK"] == 0 and summary["orders_submitted"] == 0 and summary["trades"] == 0.0


def test_latency_budget_blocks_slow_inference(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    catalog, registry = synth_setup
    day = catalog.symbol_days("BTCUSDT")[-1].day
    cfg = msgspec.structs.replace(LOOSE, latency_budget_ms=0.0)
    model = InProcessModel(registry.load("candidate"), "test")
    summary = run_backtest(catalog, "BTCUSDT", [day], "x", None, tmp_path, cfg, model=model)
    assert summary["guardrails"]["LATENCY"] == summary["decisions"] > 100
    assert summary["model_version"] == "test"
