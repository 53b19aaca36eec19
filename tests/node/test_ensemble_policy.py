"""Shadow policy (``node/ensemble_policy.py``): candidate versions asked beside live in a real
backtest, recorded on every sample, never traded; ``nhmm backtest --shadow``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from node.backtest import run_backtest
from node.ensemble_policy import PaperBook
from node.ensemble_policy import ShadowPolicy
from serving.client import HttpModelClient
from serving.client import InProcessModelClient
from serving.testing import free_port
from serving.testing import make_bundle
from tests.strategy_setup import SCHEMA
from tests.strategy_setup import TRAIN
from tests.strategy_setup import backtest_cli
from training.artifacts.registry import Registry
from training.data.catalog import MarketCatalog
from training.models.hmm import HMMConfig
from training.pipelines.evaluation import rules_for
from training.pipelines.feature_set import load_feature_sets
from training.pipelines.train import build_bundle
from training.pipelines.train import evaluate_model
from training.pipelines.train import fit_model


def register_other(catalog: MarketCatalog, registry: Registry) -> str:
    """A second version on the same schema and days (K=4), no alias moved."""
    days = [sd.day for sd in catalog.symbol_days("BTCUSDT")][:2]
    schema, train_set, holdout = load_feature_sets(catalog, "BTCUSDT", days, schema=SCHEMA)
    cfg = dataclasses.replace(
        TRAIN,
        hmm=HMMConfig(k_range=(4, 4), covariance_type="diag", n_init=1, seed=7),
        rules=rules_for(catalog.instrument("BTCUSDT"), TRAIN.labels.horizon_s),
    )
    model = fit_model(train_set, schema, cfg)
    bundle = build_bundle(model, schema, train_set, cfg, evaluate_model(model, holdout, cfg))
    return registry.register(bundle, alias=None)


@pytest.fixture(scope="module")
def runs(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The same backtest without shadow and with two shadows (live's own version + another)."""
    catalog, registry = synth_setup
    other = register_other(catalog, registry)
    root = tmp_path_factory.mktemp("shadow")
    base = backtest_cli(catalog, registry, root / "base")
    shadowed = backtest_cli(
        catalog, registry, root / "shadow", "--shadow", "candidate", "--shadow", other
    )
    return {"base": (root / "base", base), "shadow": (root / "shadow", shadowed), "other": other}


def test_shadow_never_trades_and_records_every_sample(runs: dict[str, Any]) -> None:
    (base_dir, base), (out, summary) = runs["base"], runs["shadow"]
    assert base["orders_submitted"] > 10 and base["trades"] > 5
    for key in ("orders_submitted", "trades", "entries", "decisions", "guardrails", "net_pnl"):
        assert summary[key] == base[key], key
    fills = pq.read_table(out / "fills.parquet").to_pandas()
    base_fills = pq.read_table(base_dir / "fills.parquet").to_pandas()
    same = ["client_order_id", "order_side", "last_qty", "last_px", "commission", "ts_event"]
    pd.testing.assert_frame_equal(fills[same], base_fills[same])  # event ids are random UUIDs
    timeline = pq.read_table(out / "timeline.parquet").to_pandas()
    shadow = pq.read_table(out / "shadow.parquet").to_pandas()
    versions = [summary["model_version"], runs["other"]]
    assert sorted(shadow["version"].unique()) == sorted(versions)
    assert json.loads((out / "config.json").read_text())["model"]["shadow"] == versions
    for v in versions:
        rows = shadow[shadow["version"] == v]
        np.testing.assert_array_equal(rows["ts"].to_numpy(), timeline["ts"].to_numpy())
        assert rows["day"].tolist() == timeline["day"].tolist()
        assert (rows["status"] == "ok").all() and (rows["state"] >= 0).all()
        info = summary["shadow"]["versions"][v]
        assert info["samples"] == len(timeline)
        agree = (rows["action"].to_numpy() == timeline["action"].to_numpy()).mean()
        assert info["agreement"] == pytest.approx(agree)
        assert rows["agrees_with_live"].mean() == pytest.approx(agree)


def test_shadow_of_the_live_version_agrees_fully(runs: dict[str, Any]) -> None:
    out, summary = runs["shadow"]
    timeline = pq.read_table(out / "timeline.parquet").to_pandas()
    shadow = pq.read_table(out / "shadow.parquet").to_pandas()
    live = summary["model_version"]
    same = shadow[shadow["version"] == live]
    assert summary["shadow"]["versions"][live]["agreement"] == 1.0
    np.testing.assert_array_equal(same["state"].to_numpy(), timeline["state"].to_numpy())
    np.testing.assert_array_equal(same["confidence"].to_numpy(), timeline["confidence"].to_numpy())
    assert summary["shadow"]["versions"][live]["paper"] == summary["shadow"]["live_paper"]
    # the other model (K=4) sees different regimes: it disagrees somewhere
    other = summary["shadow"]["versions"][runs["other"]]
    assert 0.0 < other["agreement"] < 1.0


def test_paper_pnl_equals_position_times_mid_changes_minus_fees(runs: dict[str, Any]) -> None:
    """Paper PnL recomputed vectorised: sum of position x next mid change, minus fees."""
    out, summary = runs["shadow"]
    timeline = pq.read_table(out / "timeline.parquet").to_pandas()
    shadow = pq.read_table(out / "shadow.parquet").to_pandas()
    config = json.loads((out / "config.json").read_text())
    q, fee = config["strategy"]["max_position"], config["instrument"]["maker_fee"]
    mid = timeline["mid"].to_numpy()

    def paper(actions: np.ndarray) -> tuple[float, float, int]:
        pos = pd.Series(np.where(actions == "buy", q, np.where(actions == "sell", -q, np.nan)))
        pos = pos.ffill().fillna(0.0).to_numpy()
        traded = np.abs(np.diff(pos, prepend=0.0))
        fees = float((traded * mid * fee).sum())
        return float((pos[:-1] * np.diff(mid)).sum()) - fees, fees, int((traded > 0).sum())

    for actions, book in (
        (timeline["action"].to_numpy(), summary["shadow"]["live_paper"]),
        (
            shadow[shadow["version"] == runs["other"]]["action"].to_numpy(),
            summary["shadow"]["versions"][runs["other"]]["paper"],
        ),
    ):
        pnl, fees, trades = paper(actions)
        assert book["pnl"] == pytest.approx(pnl, abs=1e-6)
        assert book["fees"] == pytest.approx(fees) and book["trades"] == trades > 0


def test_paper_book_holds_on_flat() -> None:
    b = PaperBook(quantity=2.0, fee_rate=0.0)
    for action, mid in (("sell", 10.0), ("flat", 8.0), ("flat", 7.0), ("buy", 7.0)):
        b.step(action, mid)
    assert (b.pnl, b.position, b.trades) == (6.0, 2.0, 2)


def test_shadow_on_another_feature_schema_is_refused(
    synth_setup: tuple[MarketCatalog, Registry], tmp_path: Path
) -> None:
    catalog, registry = synth_setup
    bundle, _ = make_bundle(3, n=300)  # FEATURES_V1 with the default 75-min window
    foreign = registry.register(bundle, alias=None)
    day = catalog.symbol_days("BTCUSDT")[-1].day
    with pytest.raises(ValueError, match=r"shadow: .*feature schema"):
        run_backtest(catalog, "BTCUSDT", [day], "candidate", registry, tmp_path / "run",
                     shadow=[foreign])  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_unanswered_shadow_records_flat_with_its_status() -> None:
    """A shadow whose Serve is down still records every sample (status error, no state)."""
    bundle, X = make_bundle(4, n=300)
    down = HttpModelClient(f"http://127.0.0.1:{free_port()}", budget_ms=100.0, model="v0009")
    up = InProcessModelClient(bundle)
    policy = ShadowPolicy([("v0009", down), (up.version, up)], "FEATURES_V1", 0.01, 0.001)
    try:
        for i, x in enumerate(X[:5]):
            policy.observe(i, "2024-01-01", x, 100.0 + i, "flat" if i % 2 else "buy")
    finally:
        down.close()
    rows = policy.table().to_pandas()
    assert len(rows) == 10
    dead = rows[rows["version"] == "v0009"]
    assert (dead["status"] == "error").all() and (dead["state"] == -1).all()
    assert (dead["action"] == "flat").all()
    assert dead["agrees_with_live"].tolist() == [False, True, False, True, False]
    assert policy.summary()["versions"]["v0009"]["agreement"] == pytest.approx(0.4)
    assert policy.summary()["versions"]["v0009"]["paper"]["trades"] == 0
    alive = rows[rows["version"] == up.version]
    assert (alive["status"] == "ok").all() and (alive["state"] >= 0).all()
    with pytest.raises(ValueError, match="duplicate"):
        ShadowPolicy([("a", up), ("a", up)], "FEATURES_V1", 0.01, 0.001)
