"""The walk-forward Tune sweep: folds, seeded trials, rejection, results, determinism, CLI."""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from training.artifacts.registry import Registry
from training.cli.sweep import sweep
from training.data.catalog import SymbolDay
from training.pipelines.sweep import REJECTED_SCORE
from training.pipelines.sweep import SearchSpace
from training.pipelines.sweep import SweepConfig
from training.pipelines.sweep import best_row
from training.pipelines.sweep import conservative_score
from training.pipelines.sweep import plan_sweep
from training.pipelines.sweep import run_sequential
from training.pipelines.sweep import run_sweep
from training.pipelines.sweep import sample_trials
from training.pipelines.sweep import walk_forward_folds

TINY = dataclasses.replace(
    SearchSpace(),
    k=(3,),
    covariance_type=("diag",),
    n_init=(1,),
    max_depth=(2, 3),
    n_estimators=(10, 20),
    threshold=(0.3, 0.45),
    horizon_s=(30.0, 60.0),
)


def test_walk_forward_never_validates_on_the_past() -> None:
    sds = [
        SymbolDay(inst, datetime.date(2024, 1, d)) for d in (3, 1, 2, 4) for inst in ("A.X", "B.X")
    ]
    folds = walk_forward_folds(sds)
    assert len(folds) == 3
    for i, (train, valid) in enumerate(folds):
        assert {sd.day.day for sd in valid} == {i + 2}
        assert max(sd.day for sd in train) < min(sd.day for sd in valid)
        assert len(train) == 2 * (i + 1) and len(valid) == 2
    with pytest.raises(ValueError, match=">= 2 days"):
        walk_forward_folds(sds[:2])


def test_trials_are_seeded_and_inside_the_space() -> None:
    a = sample_trials(12, 5, SearchSpace())
    assert a == sample_trials(12, 5, SearchSpace())
    assert a != sample_trials(12, 6, SearchSpace())
    assert {t["k"] for t in a} <= {3, 4, 5} and len({t["k"] for t in a}) > 1
    assert all(0.03 <= t["eta"] <= 0.3 and 0.4 <= t["threshold"] <= 0.7 for t in a)


def test_best_skips_rejected_and_early_stopped_trials() -> None:
    rows = [
        {"trial": "t000", "objective": 5.0, "rejected": False, "folds_done": 1, "reason": ""},
        {
            "trial": "t001",
            "objective": REJECTED_SCORE,
            "rejected": True,
            "folds_done": 0,
            "reason": "degenerate",
        },
        {"trial": "t002", "objective": 1.0, "rejected": False, "folds_done": 2, "reason": ""},
        {"trial": "t003", "objective": 1.0, "rejected": False, "folds_done": 2, "reason": ""},
    ]
    assert best_row(rows, 2)["trial"] == "t002"  # ties go to the lower trial id
    with pytest.raises(RuntimeError, match="t001: degenerate"):
        best_row(rows[:2], 2)


def test_sweep_registers_candidate_and_is_deterministic(
    synth_catalog: Path, tmp_path: Path, local_ray: None
) -> None:
    # fees 0: with the spot fees no tiny-data label clears costs, so nothing trades
    cfg = SweepConfig(
        num_samples=4, seed=3, space=TINY, scheduler="fifo", hmm_n_iter=15, maker_bps=0.0,
        taker_bps=0.0,
    )  # fmt: skip
    reg = str(tmp_path / "reg")
    kw = dict(registry_root=reg, cache_dir=tmp_path / "cache", verbose=0)
    first = run_sweep(synth_catalog, cfg, out_dir=tmp_path / "a", **kw)
    second = run_sweep(synth_catalog, cfg, out_dir=tmp_path / "b", **kw)

    rows = pq.read_table(first.run_dir / "trials.parquet").to_pylist()
    assert [r["trial"] for r in rows] == [f"t{i:03d}" for i in range(4)]
    done = [r for r in rows if not r["rejected"]]
    # issue 11: the last day is the test period, so 2 search days give one walk-forward fold;
    # the objective is the simulated net bp/day, conservative (mean - 1 SE; one fold: mean - |mean|)
    assert done and all(r["folds_done"] == 1 for r in done)
    for r in done:
        assert r["objective"] == pytest.approx(conservative_score([r["f0_net_bp_per_day"]])[0])
        assert r["objective"] <= 0.0 or r["fold_se"] > 0
    assert any(r["f0_net_bp_per_day"] != 0.0 for r in done)  # some trial traded
    assert first.best_objective == max(r["objective"] for r in done)

    # the same trials in a plain loop in this process score exactly as they did under Tune
    plan = plan_sweep(synth_catalog, cfg, cache_dir=tmp_path / "cache", verbose=0)
    assert plan.sweep_id == first.sweep_id
    by_trial = {r["trial"]: r for r in rows}
    for r in run_sequential(dataclasses.replace(plan, trials=plan.trials[:2])):
        tuned = by_trial[r["trial"]]
        assert (r["objective"], r["rejected"]) == (tuned["objective"], tuned["rejected"])

    summary = json.loads((first.run_dir / "summary.json").read_text())
    assert summary["best_trial"] == first.best_trial and summary["version"] == first.version
    assert summary["cache_misses"] == 3
    assert json.loads((second.run_dir / "summary.json").read_text())["cache_hits"] == 3

    bundle = Registry(reg).load("candidate")
    assert bundle.metadata["sweep_id"] == first.sweep_id
    assert bundle.metadata["trial_id"] == first.best_trial
    assert bundle.metadata["sweep"]["best_config"] == first.best_config
    assert len(bundle.metadata["symbol_days"]) == 2  # refit on the search days only
    test, search = bundle.metadata["test"], bundle.metadata["search"]
    assert test["symbol_days"] == [str(s) for s in plan.test_days] and len(plan.test_days) == 1
    assert plan.test_days[0].day.isoformat() not in str(bundle.metadata["symbol_days"])
    assert search["score"] == first.best_objective and "optimistic" in search["kind"]
    assert "out-of-sample" in test["kind"] and len(test["net_pnl_per_day_ci"]) == 2
    assert "metrics" in bundle.metadata and "sweep_objective" not in bundle.metadata["metrics"]

    assert second.sweep_id == first.sweep_id
    assert second.best_config == first.best_config
    assert second.bundle_id == first.bundle_id
    assert second.version != first.version  # a new version of the same bundle


def test_cli_rejects_bad_day(synth_catalog: Path) -> None:
    res = CliRunner().invoke(sweep, ["--catalog", str(synth_catalog), "--days", "2024-13-01"])
    assert res.exit_code != 0 and "--days" in res.output


def test_no_false_discovery_on_the_null_market(tmp_path: Path, local_ray: None) -> None:
    """Issue 11, one seed of bench/bench_null.py on short days: an 8-trial sweep on a market
    with no edge (``--preset null``, USD-M fees) must not find one on the untouched test day:
    its simulated net PnL CI includes 0, or it trades fewer than 5 round trips a day."""
    from training.data.sources.synth import preset
    from training.data.sources.synth import synth

    synth(preset("null", market="usdm", days=4, seed=2, day_seconds=3600), tmp_path / "cat")
    space = dataclasses.replace(TINY, horizon_s=(60.0, 300.0), threshold=(0.4, 0.6))
    cfg = SweepConfig(num_samples=8, seed=2, space=space, scheduler="fifo", hmm_n_iter=15)
    result = run_sweep(tmp_path / "cat", cfg, out_dir=tmp_path / "s",
                       registry_root=str(tmp_path / "reg"), verbose=0)  # fmt: skip
    test = result.test
    assert test is not None and test["symbol_days"] == ["BTCUSDT-PERP.BINANCE/2024-01-04"]
    lo, hi = test["net_pnl_per_day_ci"]
    assert lo <= 0.0 <= hi or test["round_trips_per_day"] < 5, test
