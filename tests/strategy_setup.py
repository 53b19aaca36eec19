"""The trained-on-synthetic-days model the node and ops tests backtest, built one way, and the
``nhmm backtest`` call the CLI tests make of it.

Labels carry a tiny cost (a 0.5 bp passive round trip, about the half-spread the labels charged
before the cost model) and thresholds are low so the policy decides buy/sell often on short days;
the 120 s warm-up lets 30-minute days produce samples.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from click.testing import CliRunner

from node.config import PolicyHMMStrategyConfig
from training.artifacts.registry import Registry
from training.cli import main
from training.costs import CostModel
from training.data.catalog import MarketCatalog
from training.data.sources.synth import SynthConfig
from training.data.sources.synth import synth
from training.features import FeatureSchema
from training.features import schema_for
from training.models.hmm import HMMConfig
from training.models.labels import LabelConfig
from training.models.policy import PolicyConfig
from training.pipelines.evaluation import rules_for
from training.pipelines.feature_set import load_feature_sets
from training.pipelines.train import TrainConfig
from training.pipelines.train import build_bundle
from training.pipelines.train import evaluate_model
from training.pipelines.train import fit_model

TRAIN = TrainConfig(
    hmm=HMMConfig(k_range=(3, 3), covariance_type="diag", n_init=1),
    labels=LabelConfig(horizon_s=30.0, costs=CostModel(0.25, 0.25), min_edge_bps=0.0),
    policy=PolicyConfig(
        buy_threshold=0.34, sell_threshold=0.34, n_estimators=30, max_depth=4, subsample=1.0
    ),  # a model that trades a lot: not nhmm train's head
)
SCHEMA = schema_for("spot", min_periods_s=120.0, standardise_window_s=600.0)
LOOSE = PolicyHMMStrategyConfig(
    instrument_id="BTCUSDT.BINANCE",
    min_conf=0.5,
    max_spread_bp_base=5.0,
    vwap_anchor_bps=50.0,
    max_position=0.01,
    cooldown_s=5.0,
    latency_budget_ms=10_000.0,  # a Serve-backed run on a loaded machine is never late
)
#: ``nhmm backtest`` options of :func:`backtest_cli`; a budget machine load never reaches:
#: LATENCY must not differ between compared runs.
CLI_CONFIG = ["--min-conf", "0.5", "--trading", "--budget-ms", "10000"]


def train_and_register(
    catalog: MarketCatalog, symbol: str, days: list, registry_root: Path, schema: FeatureSchema
) -> Registry:
    """Fit on ``days`` (the last is the held-out day), register the bundle as ``candidate``."""
    schema, train_set, holdout = load_feature_sets(catalog, symbol, days, schema=schema)
    model = fit_model(train_set, schema, TRAIN)
    cfg = dataclasses.replace(TRAIN, rules=rules_for(catalog.instrument(symbol), 30.0))
    bundle = build_bundle(model, schema, train_set, cfg, evaluate_model(model, holdout, cfg))
    registry = Registry(str(registry_root))
    registry.register(bundle)
    return registry


def make_synth_setup(root: Path) -> tuple[MarketCatalog, Registry]:
    """Three 30-minute synthetic BTCUSDT spot days; ``candidate`` is trained on the first two
    (the third is left for a backtest)."""
    synth(SynthConfig(days=3, seed=1, day_seconds=1800), root / "catalog")
    catalog = MarketCatalog(root / "catalog")
    days = [sd.day for sd in catalog.symbol_days("BTCUSDT")]
    return catalog, train_and_register(catalog, "BTCUSDT", days[:2], root / "registry", SCHEMA)


def backtest_cli(catalog: MarketCatalog, registry: Registry, out: Path, *extra: str) -> dict:
    """``nhmm backtest`` of ``candidate`` on the catalog's last BTCUSDT day (:data:`CLI_CONFIG`
    and ``extra`` options); returns the summary it wrote."""
    day = catalog.symbol_days("BTCUSDT")[-1].day.isoformat()
    args = ["backtest", "--catalog", str(catalog.root), "--symbol", "BTCUSDT", "--days", day,
            "--model", "candidate", "--registry", str(registry.root), "--out", str(out),
            *CLI_CONFIG, *extra]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "summary.json").read_text())
