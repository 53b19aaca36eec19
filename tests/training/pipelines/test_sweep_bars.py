"""``nhmm sweep --bars 1m``: the walk-forward Tune sweep on FEATURES_BARS_V1 of 1m klines.

The shared ADABTC klines hold 21 bars, too few for a walk-forward; the catalog here is three
synthetic ADABTC days of 1m klines in the Binance CSV layout, imported with ``import_binance``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from training.artifacts.registry import Registry
from training.cli.sweep import sweep
from training.data.sources.binance_public import import_binance
from training.errors import BadInputError
from training.errors import NotFoundError
from training.features.bars import FEATURES_BARS_VERSION
from training.features.bars import BarFeatureSchema
from training.pipelines.sweep import SearchSpace
from training.pipelines.sweep import SweepConfig
from training.pipelines.sweep import plan_sweep

DAYS = (datetime.date(2024, 3, 4), datetime.date(2024, 3, 5), datetime.date(2024, 3, 6))
BARS_PER_DAY = 600  # 10 h from midnight: 480 ready bars a day after the 120-bar warm-up


def write_klines(out: Path, seed: int = 0) -> list[Path]:
    """One ``ADABTC-1m-<day>.csv`` per day of :data:`DAYS`: a random walk around 2.85e-5 BTC."""
    rng = np.random.default_rng(seed)
    paths = []
    price = 2.85e-5
    for day in DAYS:
        t0 = int(datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp() * 1e3)
        rows = []
        for i in range(BARS_PER_DAY):
            o = price
            price = max(1e-6, price * float(np.exp(rng.normal(0.0, 8e-4))))
            c = price
            h = max(o, c) * (1 + abs(rng.normal(0, 3e-4)))
            lo = min(o, c) * (1 - abs(rng.normal(0, 3e-4)))
            vol = float(rng.uniform(1e4, 1e5))
            buy = vol * float(rng.uniform(0.2, 0.8))
            open_ms = t0 + i * 60_000
            rows.append(
                f"{open_ms},{o:.8f},{h:.8f},{lo:.8f},{c:.8f},{vol:.8f},{open_ms + 59_999},"
                f"{vol * c:.8f},{int(rng.integers(10, 200))},{buy:.8f},{buy * c:.8f},0"
            )
        path = out / f"ADABTC-1m-{day.isoformat()}.csv"
        path.write_text("\n".join(rows) + "\n")
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def swept(
    tmp_path_factory: pytest.TempPathFactory, local_ray: None
) -> Iterator[tuple[Path, Path, str]]:
    """``nhmm sweep --bars 1m`` with 2 trials on the synthetic kline catalog (on the package's
    Ray, which the second plan reuses)."""
    root = tmp_path_factory.mktemp("sweep_bars")
    csv_dir = root / "csv"
    csv_dir.mkdir()
    import_binance(write_klines(csv_dir), root / "catalog", name="klines", progress=False)
    args = ["--catalog", str(root / "catalog"), "--bars", "1m", "--num-samples", "2"]
    args += ["--scheduler", "fifo", "--k", "2", "--covariance", "diag", "--n-init", "1"]
    args += ["--hmm-n-iter", "10", "--maker-bps", "0", "--taker-bps", "0"]
    args += ["--out", str(root / "sweeps"), "--cache", str(root / "cache")]
    args += ["--registry", str(root / "registry"), "--num-cpus", "2", "--max-concurrent", "1"]
    result = CliRunner().invoke(sweep, args)
    assert result.exit_code == 0, result.output
    yield root, root / "registry", result.output


def test_bar_sweep_registers_a_bars_candidate_with_a_test_block(swept: tuple) -> None:
    root, registry, output = swept
    reg = Registry(str(registry))
    bundle = reg.load(reg.resolve("candidate"))
    schema = bundle.feature_schema()
    assert isinstance(schema, BarFeatureSchema) and schema.version == FEATURES_BARS_VERSION
    meta = bundle.metadata
    (run_dir,) = (root / "sweeps").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["version"] == reg.resolve("candidate") and summary["n_trials"] == 2
    # 2 search days -> one walk-forward fold; the last day is the test period, never searched
    assert summary["n_folds"] == 1 and summary["test_symbol_days"] == ["ADABTC.BINANCE/2024-03-06"]
    assert (summary["cache_hits"], summary["cache_misses"]) == (0, 3)
    test = meta["test"]
    assert test["in_sample"] is False and "2024-03-06" in test["period"]
    assert test["valid_samples"] == BARS_PER_DAY - schema.warmup_bars  # every ready bar of day 3
    horizon = meta["sweep"]["best_config"]["horizon_s"]
    assert horizon % schema.bar_interval_s == 0 and horizon >= 60.0
    assert "-> TEST" in output and f"-> {summary['version']}" in output
    # the objective's rules let ADABTC orders through (the default max_position, 0.01 ADA,
    # is no order; a bar's one-tick spread is 3.5 bp here): a trial traded
    trials = pq.read_table(run_dir / "trials.parquet").to_pylist()
    assert any(r["round_trips_per_day"] > 0 for r in trials)


def test_nhmm_backtest_bars_runs_the_swept_candidate(swept: tuple) -> None:
    from node import run_dir
    from node.cli import backtest

    root, registry, _ = swept
    args = ["--catalog", str(root / "catalog"), "--symbol", "ADABTC", "--days", "2024-03-06"]
    args += ["--model", "candidate", "--registry", str(registry), "--bars", "1m"]
    result = CliRunner().invoke(backtest, [*args, "--out", str(root / "bt")])
    assert result.exit_code == 0, result.output
    summary = json.loads((root / "bt" / run_dir.SUMMARY).read_text())
    assert summary["feed"].startswith("1m bars")


def test_second_plan_reads_the_cache_and_keeps_the_sweep_id(swept: tuple) -> None:
    root, _, _ = swept
    cfg = SweepConfig(
        num_samples=2,
        scheduler="fifo",
        space=dataclasses.replace(SearchSpace(), k=(2,), covariance_type=("diag",), n_init=(1,)),
        hmm_n_iter=10,
        maker_bps=0.0,
        taker_bps=0.0,
        bars="1m",
    )
    plan = plan_sweep(root / "catalog", cfg, cache_dir=root / "cache", verbose=0)
    (run_dir,) = (root / "sweeps").iterdir()
    assert (plan.cache_hits, plan.cache_misses) == (3, 0)
    assert plan.sweep_id == run_dir.name
    assert isinstance(plan.schema, BarFeatureSchema)
    # the book sweep of the same catalog is another sweep (and has no book to read)
    with pytest.raises(NotFoundError, match="holds no partitions") as missing:
        plan_sweep(root / "catalog", dataclasses.replace(cfg, bars=None), verbose=0)
    assert missing.value.field == "catalog"
    # a horizon below / between bars is refused by name, before any trial runs
    half = dataclasses.replace(cfg, space=dataclasses.replace(cfg.space, horizon_s=(30.0, 60.0)))
    with pytest.raises(BadInputError, match=r"\[30.0\] are not multiples") as bad:
        plan_sweep(root / "catalog", half, cache_dir=root / "cache", verbose=0)
    assert bad.value.field == "space.horizon_s"


def test_bars_on_a_catalog_without_klines_names_the_field(synth_catalog: Path) -> None:
    with pytest.raises(BadInputError, match="no 1m klines") as bad:
        plan_sweep(synth_catalog, SweepConfig(bars="1m"), verbose=0)
    assert bad.value.field == "bars"
    with pytest.raises(BadInputError, match="bars: no 1m bars of BTCUSDT") as bad:
        plan_sweep(synth_catalog, SweepConfig(symbols=("BTCUSDT",), bars="1m"), verbose=0)
    assert bad.value.field == "bars"
    with pytest.raises(BadInputError, match="bars must be None or '1m'"):
        SweepConfig(bars="5m")
    result = CliRunner().invoke(sweep, ["--catalog", str(synth_catalog), "--bars", "5m"])
    assert result.exit_code == 2 and "'5m' is not '1m'" in result.output
