"""``run_bar_backtest``: the regime strategy on the real ADABTC 1m klines in a Nautilus
``BacktestEngine``: orders on bar closes one tick off the close, filled by later bars, the
instrument's fees, and a RUN_DIR the ops readers load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from node import run_dir
from node.backtest import VenueOptions
from node.bar_backtest import BarPolicyStrategy
from node.bar_backtest import run_bar_backtest
from node.config import PolicyHMMStrategyConfig
from node.config import rule_config
from tests.bars_setup import TINY
from tests.bars_setup import kline_catalog
from training.artifacts.registry import Registry
from training.costs import CostModel
from training.data.catalog import MarketCatalog
from training.errors import NotFoundError
from training.errors import SchemaMismatchError
from training.features.bars.offline import bar_days
from training.features.bars.offline import extract_bar_features
from training.features.bars.offline import load_bar_columns
from training.features.offline import z_columns
from training.models.hmm import HMMConfig
from training.models.labels import LabelConfig
from training.models.policy import PolicyConfig
from training.pipelines.train import TrainConfig
from training.pipelines.train import train
from training.simulation.simulator import SimMarket
from training.simulation.simulator import model_answers
from training.simulation.simulator import simulate


@pytest.fixture(scope="module")
def setup(public_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A model that always takes a side (fee-free labels, zero thresholds), in a registry."""
    root = tmp_path_factory.mktemp("bar_backtest")
    catalog = kline_catalog(public_dir, root / "catalog")
    inst = catalog.instrument("ADABTC")
    cfg = PolicyHMMStrategyConfig(
        instrument_id=str(inst.id),
        trading_enabled=True,
        min_conf=0.0,
        vwap_mode="off",
        max_spread_bp_base=10.0,
        notional_multiple=10.0,
        max_position=60.0,
        cooldown_s=0.0,
        max_drawdown=1.0,
    )
    config = TrainConfig(
        hmm=HMMConfig(k_range=(2, 2), covariance_type="diag", n_init=2),
        policy=PolicyConfig(
            valid_frac=0.15,
            min_child_weight=1.0,
            buy_threshold=0.0,
            sell_threshold=0.0,
            max_depth=4,
            subsample=1.0,
        ),
        labels=LabelConfig(
            horizon_s=60.0,
            costs=CostModel.for_instrument(inst, maker_bps=0.0, taker_bps=0.0),
            min_edge_bps=0.0,
        ),
        test_days=0,
        holdout_frac=0.15,
        rules=rule_config(cfg, inst, 60.0),
    )
    bundle, _ = train(catalog, "ADABTC", None, config, schema=TINY)
    registry = Registry(str(root / "registry"))
    version = registry.register(bundle, alias="candidate")
    return catalog, registry, version, cfg, root


def test_orders_on_bar_closes_fill_on_later_bars_with_fees(setup: tuple) -> None:
    catalog, registry, version, cfg, root = setup
    out = root / "run"
    venue = VenueOptions(starting_base=1000.0)  # spot: ADA to sell from
    summary = run_bar_backtest(catalog, "ADABTC", None, version, registry, out, cfg, venue)
    assert summary["events"] == 21 and summary["samples"] == 9 + 10  # 1-bar warm-up per session
    assert summary["in_sample"] is True  # no train_end_ns: every traded day was trained on
    assert summary["entries"] > 0 and summary["orders_submitted"] == summary["entries"]
    bars = [load_bar_columns(catalog, sd) for sd in bar_days(catalog, "ADABTC")]
    close = dict(
        zip(
            np.concatenate([b.ts for b in bars]).tolist(),
            np.concatenate([b.close for b in bars]).tolist(),
            strict=True,
        )
    )
    tick = float(catalog.instrument("ADABTC").price_increment)
    entries = pq.read_table(out / run_dir.ENTRIES).to_pylist()
    for e in entries:  # sent at a bar close, one tick through it on the passive side
        assert e["ts"] in close and e["submitted"]
        expected = close[e["ts"]] - tick if e["side"] == "buy" else close[e["ts"]] + tick
        assert e["price"] == pytest.approx(expected, abs=tick / 10)
        assert e["price"] * e["quantity"] >= 10 * 0.0001 * (1 - 1e-9)  # 10x min notional
    fills = pq.read_table(out / run_dir.FILLS).to_pandas()
    assert len(fills) >= 1 and summary["trades"] == len(fills)
    assert summary["fees"] > 0  # the instrument's fees, charged by the venue
    first_entry = min(e["ts"] for e in entries)
    fill_ts = fills["ts_event"].astype("int64") if fills["ts_event"].dtype != object else None
    if fill_ts is not None:
        assert (fill_ts > first_entry).all()  # a later bar fills, never the bar it was sent on
    guardrails = json.loads((out / run_dir.GUARDRAILS).read_text())
    assert guardrails["OK"] == summary["entries"] and guardrails["POS"] > 0  # the limit held
    run = run_dir.load_run(out)  # the ops reader takes a bar run
    assert len(run.pnl) == summary["samples"]


def test_trade_from_keeps_the_past_for_warm_up_only(setup: tuple) -> None:
    catalog, registry, version, cfg, root = setup
    sds = bar_days(catalog, "ADABTC")
    start = int(load_bar_columns(catalog, sds[1]).ts[5])
    summary = run_bar_backtest(
        catalog,
        "ADABTC",
        None,
        version,
        registry,
        root / "tail",
        cfg,
        VenueOptions(starting_base=1000.0),
        trade_from_ns=start,
    )
    timeline = pq.read_table(root / "tail" / run_dir.TIMELINE)
    assert summary["events"] == 21 and timeline["ts"].to_pylist()[0] == start
    assert summary["samples"] == 6 and summary["days"] == ["2021-11-28"]


def test_a_book_schema_is_refused_for_bars(setup: tuple) -> None:
    from training.features import FeatureSchema

    cfg = setup[3]
    with pytest.raises(SchemaMismatchError, match="needs a model trained on bar features"):
        BarPolicyStrategy(cfg, model=None, schema=FeatureSchema())  # type: ignore[arg-type]


def test_the_bundle_dispatches_on_its_schema_and_refuses_book_vectors(setup: tuple) -> None:
    from serving.client import InProcessModelClient
    from training.features.bars import BarFeatureSchema
    from training.features.bars import schema_from_dict

    _, registry, version, _, _ = setup
    client = InProcessModelClient(version, registry)
    assert client.schema == TINY and isinstance(client.schema, BarFeatureSchema)
    z = np.zeros(len(TINY.names))
    assert client.infer(z, None, TINY.version).ok
    refused = client.infer(z, None, "FEATURES_V1")
    assert refused.result is None and "schema_version" in (refused.error or "")
    assert schema_from_dict(registry.load(version).schema) == TINY


def _simulated(catalog: MarketCatalog, registry: Registry, version: str, cfg: Any, day: Any) -> Any:
    """The trade simulator (what training's ``test`` block is) on one day's bar features."""
    bundle = registry.load(version)
    tables = extract_bar_features(catalog, "ADABTC", [day], schema=TINY, progress=False)
    table = pa.concat_tables(list(tables.values()))
    market = SimMarket.from_table(table)
    rows = market.tradable
    X = np.column_stack([table.column(c).to_numpy() for c in z_columns(TINY)])[rows]
    actions, confidence = model_answers(
        bundle.hmm_params(), bundle.policy_head(), X, market.cols["session"][rows]
    )
    inst = catalog.instrument("ADABTC")
    rules = rule_config(cfg, inst, 60.0)
    return simulate(
        market,
        actions,
        confidence,
        rules,
        CostModel.for_instrument(inst),
        exit_requote_s=cfg.exit_requote_s,
    )


def test_nautilus_on_bars_fills_what_the_simulator_fills(setup: tuple) -> None:
    """Same rules, same fill rule (a later bar trades through the price): per day, the same
    fills at the same bars, prices and sizes, and the same net PnL up to Nautilus's commission
    rounding to the currency's 8 decimals."""
    catalog, registry, version, cfg, root = setup
    n_fills = 0
    for sd in bar_days(catalog, "ADABTC"):
        out = root / f"day-{sd.day}"
        summary = run_bar_backtest(
            catalog,
            "ADABTC",
            [sd.day],
            version,
            registry,
            out,
            cfg,
            VenueOptions(starting_base=1000.0),
        )
        sim = _simulated(catalog, registry, version, cfg, sd.day)
        fills = pq.read_table(out / run_dir.FILLS).to_pandas()
        ts = pd.to_datetime(fills["ts_event"]).astype("int64").to_numpy()
        side = np.where(fills["order_side"] == "BUY", 1, -1)
        np.testing.assert_array_equal(ts, sim.fills["ts"])
        np.testing.assert_array_equal(side, sim.fills["side"])
        np.testing.assert_allclose(fills["last_px"].astype(float), sim.fills["px"], rtol=1e-12)
        np.testing.assert_allclose(fills["last_qty"].astype(float), sim.fills["qty"], rtol=1e-12)
        assert summary["net_pnl"] == pytest.approx(sim.metrics()["net_pnl"], abs=1e-8)
        n_fills += len(fills)
    assert n_fills >= 2  # both days trade


def test_nhmm_backtest_bars_runs_the_bar_backtest(setup: tuple, tmp_path: Path) -> None:
    """``nhmm backtest --bars 1m`` is :func:`run_bar_backtest` (same RUN_DIR, same summary)."""
    from click.testing import CliRunner

    from node.cli import backtest

    catalog, registry, version, _, _ = setup
    common = ["--catalog", str(catalog.root), "--symbol", "ADABTC", "--model", version,
              "--registry", str(registry.root), "--min-conf", "0"]  # fmt: skip
    res = CliRunner().invoke(backtest, [*common, "--out", str(tmp_path / "cli"), "--bars", "1m"])
    assert res.exit_code == 0, res.output
    got = json.loads((tmp_path / "cli" / run_dir.SUMMARY).read_text())
    assert got["feed"].startswith("1m bars") and "passive_fill_rate" not in got
    assert f"{'trades':>20}: {got['trades']:.6g}" in res.output
    refused = CliRunner().invoke(
        backtest, [*common, "--out", str(tmp_path / "x"), "--bars", "1m", "--serve", "http://h"]
    )
    assert refused.exit_code == 2 and "--bars runs the model in process" in refused.output
    book = CliRunner().invoke(backtest, [*common, "--out", str(tmp_path / "book")])
    assert isinstance(book.exception, NotFoundError) and "no partitions" in str(book.exception)
