"""Running a planned sweep: every trial under Ray Tune (or in a plain loop), the results table,
the refit of the best config on the search days, its test, registered as ``candidate``.

Trials run as a Tune grid, one CPU each. The best config (highest conservative score) is refit
on every SEARCH day, then the trade simulator trades the untouched test days with it: the
bundle's metadata carries ``search`` (the winning trial's walk-forward score, what the choice
was made on: optimistic by construction) and ``test`` (simulated net PnL per day on the test
days with a day-block bootstrap CI: the number to believe), named apart. The bundle's
``created_at`` is the day after the last search day, so a rerun registers the same bundle id.
Results go to ``OUT/<sweep_id>/trials.parquet`` and ``summary.json``, both written atomically.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from training.io import atomic_path
from training.io import atomic_write_json
from training.pipelines.evaluation import summarise_test
from training.pipelines.sweep.plan import SweepPlan
from training.pipelines.sweep.plan import feature_set
from training.pipelines.sweep.plan import plan_sweep
from training.pipelines.sweep.space import SweepConfig
from training.pipelines.sweep.space import train_config
from training.pipelines.sweep.trials import REPORTED
from training.pipelines.sweep.trials import best_row
from training.pipelines.sweep.trials import table_rows
from training.pipelines.sweep.trials import trial_reports
from training.pipelines.sweep.trials import trial_row
from training.pipelines.sweep.trials import tune_rows
from training.pipelines.sweep.trials import tune_trial
from training.pipelines.train import build_bundle
from training.pipelines.train import evaluate_model
from training.pipelines.train import fit_model

__all__ = ["SweepResult", "run_sequential", "run_sweep"]


@dataclass(frozen=True)
class SweepResult:
    """Where the results went and what won."""

    sweep_id: str
    run_dir: Path
    trials: pa.Table
    best_trial: str
    best_config: dict[str, Any]
    best_objective: float
    version: str | None
    bundle_id: str | None
    search: dict[str, Any] | None = None
    test: dict[str, Any] | None = None


def run_sequential(plan: SweepPlan) -> list[dict[str, Any]]:
    """The plan's trials one after another in this process, without Tune (no early stopping):
    the baseline a parallel sweep is measured against. Returns the results-table rows."""
    rows = []
    for trial in plan.trials:
        reports = list(trial_reports(trial, plan.folds, plan.schema, plan.settings))
        rows.append(trial_row(trial, reports[-1] if reports else None))
    return table_rows(rows)


def _run_tune(plan: SweepPlan, config: SweepConfig, run_dir: Path, verbose: int) -> Any:
    """Every trial of ``plan`` as a Tune grid (ASHA or FIFO); Tune's result grid."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.schedulers import FIFOScheduler

    trainable = tune.with_resources(
        tune.with_parameters(
            tune_trial, folds=plan.folds, schema=plan.schema, settings=plan.settings
        ),
        {"cpu": 1},
    )
    scheduler = (
        ASHAScheduler(time_attr="training_iteration", max_t=len(plan.folds), grace_period=1)
        if config.scheduler == "asha"
        else FIFOScheduler()
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(plan.trials)},
        tune_config=tune.TuneConfig(
            metric="objective",
            mode="max",
            num_samples=1,
            scheduler=scheduler,
            max_concurrent_trials=config.max_concurrent,
            reuse_actors=config.reuse_actors,
        ),
        run_config=tune.RunConfig(
            name=f"{plan.sweep_id}-{time.strftime('%Y%m%dT%H%M%S')}",
            storage_path=str(run_dir / "tune"),
            verbose=verbose,
        ),
    )
    return tuner.fit()


def _register_best(
    plan: SweepPlan,
    config: SweepConfig,
    best: dict[str, Any],
    best_config: dict[str, Any],
    registry_root: str | None,
) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """Refit ``best_config`` on every search day, test it on the test days, register it as
    ``candidate``; ``(version, bundle_id, search, test)``."""
    from training.artifacts.bundle import bundle_files
    from training.artifacts.bundle import verify_files
    from training.artifacts.registry import Registry

    sds, schema = plan.symbol_days, plan.schema
    tc = train_config(best_config, plan.settings)
    all_set = feature_set(plan.tables, sds, schema)
    model = fit_model(all_set, schema, tc)
    test_set = feature_set(plan.tables, plan.test_days, schema)
    sims: list = []
    test_metrics = evaluate_model(model, test_set, tc, sims)
    test = summarise_test(
        sims[0],
        "days " + ", ".join(sorted({sd.day.isoformat() for sd in plan.test_days})),
        [str(sd) for sd in plan.test_days],
    )
    test.update({k: v for k, v in test_metrics.items() if k not in test})
    search = {
        "kind": "walk-forward validation of the chosen trial (the choice was made on it: "
        "optimistic); score = fold mean - 1 SE of net_bp_per_day",
        "score": float(best["objective"]),
        "fold_mean": float(best["fold_mean"]),
        "fold_se": float(best["fold_se"]),
        "n_folds": len(plan.folds),
        **{k: float(best[k]) for k in REPORTED},
    }
    last_day = max(sd.day for sd in sds) + datetime.timedelta(days=1)
    bundle = build_bundle(
        model,
        schema,
        all_set,
        tc,
        {},
        extra_metadata={
            "created_at": f"{last_day.isoformat()}T00:00:00Z",
            "search": search,
            "test": test,
            "sweep": {
                "sweep_id": plan.sweep_id,
                "best_trial": best["trial"],
                "best_config": best_config,
                "seed": config.seed,
                "num_samples": config.num_samples,
            },
        },
    )
    registry = Registry(registry_root)
    version = registry.register(
        bundle, alias="candidate", sweep_id=plan.sweep_id, trial_id=best["trial"]
    )
    return version, verify_files(bundle_files(registry.load(version))).bundle_id, search, test


def run_sweep(
    catalog_root: str | Path,
    config: SweepConfig,
    *,
    out_dir: str | Path = "sweeps",
    registry_root: str | None = None,
    cache_dir: str | Path | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    register: bool = True,
    verbose: int = 1,
    plan: SweepPlan | None = None,
) -> SweepResult:
    """Extract (cached), run the Tune walk-forward sweep, write results, refit and register.

    ``plan`` (from :func:`plan_sweep` with the same arguments) skips the preparation."""
    if plan is None:
        plan = plan_sweep(
            catalog_root,
            config,
            cache_dir=cache_dir,
            address=address,
            num_cpus=num_cpus,
            verbose=verbose,
        )
    run_dir = Path(out_dir).resolve() / plan.sweep_id
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = tune_rows(_run_tune(plan, config, run_dir, verbose), plan.trials)
    table = pa.Table.from_pylist(rows)
    with atomic_path(run_dir / "trials.parquet") as tmp:
        pq.write_table(table, tmp)
    best = best_row(rows, len(plan.folds))
    best_config = {k: best[k] for k in plan.trials[0]}

    version = bundle_id = None
    search: dict[str, Any] = {"score": float(best["objective"])}
    test: dict[str, Any] | None = None
    if register:
        version, bundle_id, search, test = _register_best(
            plan, config, best, best_config, registry_root
        )
    summary = {
        "sweep_id": plan.sweep_id,
        "best_trial": best["trial"],
        "best_config": best_config,
        "best_objective": best["objective"],
        "search": search,
        "test": test,
        "version": version,
        "bundle_id": bundle_id,
        "n_trials": len(rows),
        "n_folds": len(plan.folds),
        "symbol_days": [f"{sd.instrument_id}/{sd.day}" for sd in plan.symbol_days],
        "test_symbol_days": [str(sd) for sd in plan.test_days],
        "cache_hits": plan.cache_hits,
        "cache_misses": plan.cache_misses,
    }
    atomic_write_json(run_dir / "summary.json", summary)
    return SweepResult(
        plan.sweep_id,
        run_dir,
        table,
        best["trial"],
        best_config,
        float(best["objective"]),
        version,
        bundle_id,
        search,
        test,
    )
