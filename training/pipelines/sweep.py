"""``nhmm sweep``: a Ray Tune walk-forward search over HMM + policy hyper-parameters.

Trials are drawn up front from a seeded numpy generator (so the same seed gives the same
trials in the same order) and run by Tune as a grid, one CPU each. Each trial walks forward over
the selected days: fold ``i`` trains on every symbol-day up to day ``i`` and validates on day
``i + 1`` (never the reverse) and reports once per fold, so ASHA can stop weak trials early.
The objective is the mean validation net PnL (bp, after costs); a model that leaves a state
(almost) unused is degenerate and rejected. The best config is refit on all days and registered
as ``candidate`` with the sweep id and trial id in its metadata. The sweep id and the bundle's
``created_at`` are derived from the data and settings, so a rerun registers the same bundle id.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import click
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from training.cli.options import days_option
from training.data.catalog import MarketCatalog, SymbolDay
from training.features.cache import cached_features, load_tables
from training.features.engine import FeatureSchema
from training.models.hmm import HMMConfig
from training.models.labels import LabelConfig
from training.models.policy import PolicyConfig
from training.pipelines.train import (
    FeatureSet,
    TrainConfig,
    build_bundle,
    evaluate_model,
    fit_model,
)

__all__ = [
    "SearchSpace",
    "SweepConfig",
    "SweepPlan",
    "SweepResult",
    "best_row",
    "plan_sweep",
    "run_sequential",
    "run_sweep",
    "sample_trials",
    "sweep",
    "trial_reports",
    "trial_row",
    "walk_forward_folds",
]

REJECTED_SCORE = -1.0e9  # Parquet and Tune both choke on -inf; rows also carry rejected=True
REPORTED = (
    "net_pnl_bp",
    "valid_bic",
    "valid_loglik_per_sample",
    "state_entropy",
    "state_occupancy_min",
    "policy_accuracy",
    "trades",
)


@dataclass(frozen=True)
class SearchSpace:
    """Choices (tuples) and ``(lo, hi)`` ranges the trials are drawn from."""

    k: tuple[int, ...] = (3, 4, 5)
    covariance_type: tuple[str, ...] = ("full", "diag")
    n_init: tuple[int, ...] = (1, 2, 3)
    max_depth: tuple[int, ...] = (2, 3, 4, 6)
    eta: tuple[float, float] = (0.03, 0.3)  # log-uniform
    n_estimators: tuple[int, ...] = (50, 100, 200)
    min_child_weight: tuple[float, ...] = (1.0, 5.0, 10.0)
    threshold: tuple[float, float] = (0.4, 0.7)  # uniform; buy and sell alike
    horizon_s: tuple[float, ...] = (5.0, 10.0, 30.0)


@dataclass(frozen=True)
class SweepConfig:
    """What to search and how; defaults sweep every symbol and day in the catalog."""

    symbols: tuple[str, ...] = ()
    days: tuple[datetime.date, ...] = ()
    num_samples: int = 16
    seed: int = 0
    space: SearchSpace = field(default_factory=SearchSpace)
    scheduler: Literal["asha", "fifo"] = "asha"
    max_concurrent: int | None = None
    min_occupancy: float = 0.01
    hmm_n_iter: int = 100
    fee_bps: float | None = None

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"SweepConfig.num_samples must be >= 1, got {self.num_samples}")
        if self.scheduler not in ("asha", "fifo"):
            raise ValueError(f"SweepConfig.scheduler must be asha or fifo, got {self.scheduler!r}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError("SweepConfig.max_concurrent must be >= 1")


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


def sample_trials(num_samples: int, seed: int, space: SearchSpace) -> list[dict[str, Any]]:
    """``num_samples`` trial configs drawn with ``numpy.random.default_rng(seed)``.

    >>> a = sample_trials(3, 7, SearchSpace())
    >>> a == sample_trials(3, 7, SearchSpace()), [t["trial"] for t in a]
    (True, ['t000', 't001', 't002'])
    """
    rng = np.random.default_rng(seed)
    out = []
    for i in range(num_samples):
        lo, hi = space.eta
        tlo, thi = space.threshold
        out.append(
            {
                "trial": f"t{i:03d}",
                "k": int(rng.choice(space.k)),
                "covariance_type": str(rng.choice(space.covariance_type)),
                "n_init": int(rng.choice(space.n_init)),
                "hmm_seed": int(rng.integers(0, 2**31 - 1)),
                "max_depth": int(rng.choice(space.max_depth)),
                "eta": round(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))), 5),
                "n_estimators": int(rng.choice(space.n_estimators)),
                "min_child_weight": float(rng.choice(space.min_child_weight)),
                "threshold": round(float(rng.uniform(tlo, thi)), 4),
                "horizon_s": float(rng.choice(space.horizon_s)),
                "policy_seed": int(rng.integers(0, 2**31 - 1)),
            }
        )
    return out


def train_config(trial: dict[str, Any], fee_bps: float, hmm_n_iter: int) -> TrainConfig:
    """The :class:`TrainConfig` of one trial's config dict."""
    return TrainConfig(
        hmm=HMMConfig(
            k_range=(trial["k"], trial["k"]),
            covariance_type=trial["covariance_type"],
            n_init=trial["n_init"],
            n_iter=hmm_n_iter,
            seed=trial["hmm_seed"],
        ),
        policy=PolicyConfig(
            max_depth=trial["max_depth"],
            eta=trial["eta"],
            n_estimators=trial["n_estimators"],
            min_child_weight=trial["min_child_weight"],
            buy_threshold=trial["threshold"],
            sell_threshold=trial["threshold"],
            seed=trial["policy_seed"],
        ),
        labels=LabelConfig(horizon_s=trial["horizon_s"], fee_bps=fee_bps),
    )


def walk_forward_folds(
    symbol_days: list[SymbolDay],
) -> list[tuple[list[SymbolDay], list[SymbolDay]]]:
    """Fold ``i``: train on symbol-days of days ``<= D[i]``, validate on those of ``D[i+1]``.

    >>> sds = [SymbolDay("X.B", datetime.date(2024, 1, d)) for d in (1, 2, 3)]
    >>> [(len(t), v[0].day.day) for t, v in walk_forward_folds(sds)]
    [(1, 2), (2, 3)]
    """
    days = sorted({sd.day for sd in symbol_days})
    if len(days) < 2:
        raise ValueError(f"walk-forward needs >= 2 days, got {len(days)}")
    ordered = sorted(symbol_days, key=lambda sd: (sd.day, sd.instrument_id))
    return [
        (
            [sd for sd in ordered if sd.day <= days[i]],
            [sd for sd in ordered if sd.day == days[i + 1]],
        )
        for i in range(len(days) - 1)
    ]


def _subset(
    tables: dict[SymbolDay, pa.Table], sds: list[SymbolDay], schema: FeatureSchema
) -> FeatureSet:
    # one sequence per symbol, days in order (lengths split them for the HMM)
    by_symbol = sorted(sds, key=lambda sd: (sd.instrument_id, sd.day))
    return FeatureSet.from_tables({sd: tables[sd] for sd in by_symbol}, schema)


def trial_reports(
    config: dict[str, Any],
    folds: list[tuple[FeatureSet, FeatureSet]],
    schema: FeatureSchema,
    settings: dict[str, Any],
) -> Iterator[dict[str, Any]]:
    """One trial's work: fit and validate fold after fold, yielding the running report after
    each; a rejected fold yields a final report with ``rejected=True`` and stops."""
    tc = train_config(config, settings["fee_bps"], settings["hmm_n_iter"])
    pnl: list[float] = []
    flat: dict[str, float] = {}
    for i, (train_set, valid_set) in enumerate(folds):
        t0 = time.perf_counter()
        reason = ""
        try:
            metrics = evaluate_model(fit_model(train_set, schema, tc), valid_set, tc)
        except (ValueError, np.linalg.LinAlgError) as exc:  # e.g. no K-state fit converged
            metrics, reason = {}, f"fold {i}: fit failed: {exc}"
        if not reason:
            bad = [k for k in REPORTED if not math.isfinite(metrics[k])]
            if bad:
                reason = f"fold {i}: non-finite {bad}"
            elif metrics["state_occupancy_min"] < settings["min_occupancy"]:
                reason = (
                    f"fold {i}: degenerate (state occupancy "
                    f"{metrics['state_occupancy_min']:.4f} < {settings['min_occupancy']})"
                )
        if reason:
            yield {
                "objective": REJECTED_SCORE,
                "rejected": True,
                "reason": reason,
                "folds_done": i,
                **flat,
            }
            return
        pnl.append(metrics["net_pnl_bp"])
        flat.update({f"f{i}_{k}": float(metrics[k]) for k in REPORTED})
        flat[f"f{i}_fit_s"] = time.perf_counter() - t0
        yield {
            "objective": float(np.mean(pnl)),
            "rejected": False,
            "reason": "",
            "folds_done": i + 1,
            **{k: float(np.mean([flat[f"f{j}_{k}"] for j in range(i + 1)])) for k in REPORTED},
            **flat,
        }


def _trial(
    config: dict[str, Any],
    folds: list[tuple[FeatureSet, FeatureSet]] | None = None,
    schema: FeatureSchema | None = None,
    settings: dict[str, Any] | None = None,
) -> None:
    """Tune function trainable: one ``tune.report`` per walk-forward fold."""
    import ray
    from ray import tune

    assert folds is not None and schema is not None and settings is not None
    config = config.get("trial", config)  # the grid wraps each drawn config
    node_id = ray.get_runtime_context().get_node_id()
    for report in trial_reports(config, folds, schema, settings):
        tune.report({**report, "node_id": node_id})


def _sweep_id(keys: list[str], cfg: SweepConfig) -> str:
    blob = json.dumps(
        {
            "data": keys,
            "seed": cfg.seed,
            "n": cfg.num_samples,
            "space": dataclasses.asdict(cfg.space),
            "scheduler": cfg.scheduler,
            "min_occupancy": cfg.min_occupancy,
            "n_iter": cfg.hmm_n_iter,
            "fee": cfg.fee_bps,
        },
        sort_keys=True,
    )
    return "sweep-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def _select(catalog: MarketCatalog, cfg: SweepConfig) -> list[SymbolDay]:
    return catalog.select(cfg.symbols or None, cfg.days or None)


def trial_row(
    trial: dict[str, Any], report: dict[str, Any] | None, error: str = ""
) -> dict[str, Any]:
    """The results-table row of ``trial`` from its last report (``None``: never reported)."""
    m = report or {}
    row = {**trial}
    row.update(
        objective=float(m.get("objective", REJECTED_SCORE)),
        rejected=bool(m.get("rejected", True)) or bool(error),
        reason=str(m.get("reason", "")) or error[:500],
        folds_done=int(m.get("folds_done", 0)),
        node_id=str(m.get("node_id", "")),
    )
    row.update(
        {k: float(v) for k, v in m.items() if k in REPORTED or (k[:1] == "f" and k[1:2].isdigit())}
    )
    return row


def _table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = sorted(rows, key=lambda row: row["trial"])
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return [{k: row.get(k) for k in keys} for row in rows]


def _rows(results: Any, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {t["trial"]: t for t in trials}
    rows = []
    for r in results:
        if r.config is None:
            continue
        cfg = r.config.get("trial", r.config)
        rows.append(trial_row(by_name[cfg["trial"]], r.metrics, str(r.error) if r.error else ""))
    return _table_rows(rows)


def best_row(rows: list[dict[str, Any]], n_folds: int) -> dict[str, Any]:
    """The winning row: highest objective among trials that completed every fold unrejected
    (ties broken by trial id, so the choice is deterministic)."""
    ok = [r for r in rows if not r["rejected"] and r["folds_done"] == n_folds]
    if not ok:
        raise RuntimeError(
            "no trial completed every fold without rejection: "
            + "; ".join(f"{r['trial']}: {r['reason'] or 'stopped early'}" for r in rows[:10])
        )
    return max(ok, key=lambda r: (r["objective"], [-ord(c) for c in r["trial"]]))


@dataclass(frozen=True)
class SweepPlan:
    """Everything a sweep's trials need, prepared once: folds in memory, trials drawn."""

    catalog: MarketCatalog
    symbol_days: list[SymbolDay]
    sweep_id: str
    schema: FeatureSchema
    tables: dict[SymbolDay, pa.Table]
    folds: list[tuple[FeatureSet, FeatureSet]]
    trials: list[dict[str, Any]]
    settings: dict[str, Any]
    cache_hits: int
    cache_misses: int


def plan_sweep(
    catalog_root: str | Path,
    config: SweepConfig,
    *,
    cache_dir: str | Path | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    verbose: int = 1,
) -> SweepPlan:
    """Select symbol-days, extract their features (Ray tasks, cached), build the walk-forward
    folds and draw the trials."""
    from cluster import ClusterConfig, connect

    catalog = MarketCatalog(catalog_root)
    sds = _select(catalog, config)
    fold_sds = walk_forward_folds(sds)
    connect(ClusterConfig(num_cpus=num_cpus), address=address)
    cache = cached_features(catalog, sds, cache_dir=cache_dir, progress=verbose > 0)
    schema, tables = load_tables(cache.paths)
    fee_bps = config.fee_bps
    if fee_bps is None:
        fee_bps = float(catalog.instrument(sds[0].instrument_id).maker_fee) * 1e4
    return SweepPlan(
        catalog=catalog,
        symbol_days=sds,
        sweep_id=_sweep_id([p.name for p in cache.paths.values()], config),
        schema=schema,
        tables=tables,
        folds=[(_subset(tables, tr, schema), _subset(tables, va, schema)) for tr, va in fold_sds],
        trials=sample_trials(config.num_samples, config.seed, config.space),
        settings={
            "fee_bps": fee_bps,
            "hmm_n_iter": config.hmm_n_iter,
            "min_occupancy": config.min_occupancy,
        },
        cache_hits=cache.hits,
        cache_misses=cache.misses,
    )


def run_sequential(plan: SweepPlan) -> list[dict[str, Any]]:
    """The plan's trials one after another in this process, without Tune (no early stopping):
    the baseline a parallel sweep is measured against. Returns the results-table rows."""
    rows = []
    for trial in plan.trials:
        reports = list(trial_reports(trial, plan.folds, plan.schema, plan.settings))
        rows.append(trial_row(trial, reports[-1] if reports else None))
    return _table_rows(rows)


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
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if plan is None:
        plan = plan_sweep(
            catalog_root,
            config,
            cache_dir=cache_dir,
            address=address,
            num_cpus=num_cpus,
            verbose=verbose,
        )
    sds, schema, tables, folds = plan.symbol_days, plan.schema, plan.tables, plan.folds
    trials, settings, sweep_id = plan.trials, plan.settings, plan.sweep_id
    fee_bps = settings["fee_bps"]
    run_dir = Path(out_dir).resolve() / sweep_id
    run_dir.mkdir(parents=True, exist_ok=True)

    trainable = tune.with_resources(
        tune.with_parameters(_trial, folds=folds, schema=schema, settings=settings), {"cpu": 1}
    )
    scheduler = (
        ASHAScheduler(time_attr="training_iteration", max_t=len(folds), grace_period=1)
        if config.scheduler == "asha"
        else FIFOScheduler()
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(trials)},
        tune_config=tune.TuneConfig(
            metric="objective",
            mode="max",
            num_samples=1,
            scheduler=scheduler,
            max_concurrent_trials=config.max_concurrent,
            reuse_actors=True,  # a fresh actor re-imports xgboost/hmmlearn: seconds per trial
        ),
        run_config=tune.RunConfig(
            name=f"{sweep_id}-{time.strftime('%Y%m%dT%H%M%S')}",
            storage_path=str(run_dir / "tune"),
            verbose=verbose,
        ),
    )
    results = tuner.fit()
    rows = _rows(results, trials)
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, run_dir / "trials.parquet")
    best = best_row(rows, len(folds))
    best_config = {k: best[k] for k in trials[0]}

    version = bundle_id = None
    if register:
        from training.artifacts.bundle import bundle_files, verify_files
        from training.artifacts.registry import Registry

        tc = train_config(best_config, fee_bps, config.hmm_n_iter)
        all_set = _subset(tables, sds, schema)
        model = fit_model(all_set, schema, tc)
        metrics = {k: float(best[k]) for k in REPORTED}
        metrics["sweep_objective"] = float(best["objective"])
        last_day = max(sd.day for sd in sds) + datetime.timedelta(days=1)
        bundle = build_bundle(
            model,
            schema,
            all_set,
            tc,
            metrics,
            extra_metadata={
                "created_at": f"{last_day.isoformat()}T00:00:00Z",
                "sweep": {
                    "sweep_id": sweep_id,
                    "best_trial": best["trial"],
                    "best_config": best_config,
                    "seed": config.seed,
                    "num_samples": config.num_samples,
                },
            },
        )
        registry = Registry(registry_root)
        version = registry.register(
            bundle, alias="candidate", sweep_id=sweep_id, trial_id=best["trial"]
        )
        bundle_id = verify_files(bundle_files(registry.load(version))).bundle_id
    summary = {
        "sweep_id": sweep_id,
        "best_trial": best["trial"],
        "best_config": best_config,
        "best_objective": best["objective"],
        "version": version,
        "bundle_id": bundle_id,
        "n_trials": len(rows),
        "n_folds": len(folds),
        "symbol_days": [f"{sd.instrument_id}/{sd.day}" for sd in sds],
        "cache_hits": plan.cache_hits,
        "cache_misses": plan.cache_misses,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return SweepResult(
        sweep_id,
        run_dir,
        table,
        best["trial"],
        best_config,
        float(best["objective"]),
        version,
        bundle_id,
    )


def print_top(result: SweepResult, n: int = 10) -> None:
    """A rich table of the ``n`` best trials."""
    from rich.console import Console
    from rich.table import Table

    rows = sorted(result.trials.to_pylist(), key=lambda r: -r["objective"])[:n]
    table = Table(title=f"{result.sweep_id}: top {len(rows)} (best {result.best_trial})")
    cols = (
        "trial",
        "objective",
        "k",
        "covariance_type",
        "threshold",
        "horizon_s",
        "valid_bic",
        "state_entropy",
        "policy_accuracy",
        "trades",
        "folds_done",
        "rejected",
    )
    for col in cols:
        table.add_column(col)
    for r in rows:
        table.add_row(
            *(f"{r.get(c):.4g}" if isinstance(r.get(c), float) else str(r.get(c)) for c in cols)
        )
    Console().print(table)


@click.command("sweep")
@click.option("--catalog", "catalog_root", required=True, type=click.Path(exists=True))
@click.option("--symbols", multiple=True, help="Symbol (repeatable); default: every symbol.")
@days_option
@click.option("--num-samples", type=int, default=16, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--scheduler", type=click.Choice(["asha", "fifo"]), default="asha", show_default=True)
@click.option("--max-concurrent", type=int, default=None)
@click.option("--k", "k_values", multiple=True, type=int, help="K choices; default 3 4 5.")
@click.option(
    "--covariance",
    "covariances",
    multiple=True,
    type=click.Choice(["full", "diag"]),
    help="Covariance choices; default both.",
)
@click.option("--n-init", "n_inits", multiple=True, type=int, help="n_init choices.")
@click.option("--hmm-n-iter", type=int, default=100, show_default=True)
@click.option("--out", "out_dir", default="sweeps", show_default=True)
@click.option("--cache", "cache_dir", default=None, help="Default: CATALOG/.feature_cache.")
@click.option("--registry", "registry_root", default=None, help="Overrides NHMM_REGISTRY.")
@click.option("--address", default=None, help="Overrides RAY_ADDRESS.")
@click.option("--num-cpus", type=int, default=None, help="Local Ray only.")
def sweep(
    catalog_root: str,
    symbols: tuple[str, ...],
    days: tuple[datetime.date, ...],
    num_samples: int,
    seed: int,
    scheduler: str,
    max_concurrent: int | None,
    k_values: tuple[int, ...],
    covariances: tuple[str, ...],
    n_inits: tuple[int, ...],
    hmm_n_iter: int,
    out_dir: str,
    cache_dir: str | None,
    registry_root: str | None,
    address: str | None,
    num_cpus: int | None,
) -> None:
    """Walk-forward Ray Tune sweep; registers the refit best config as ``candidate``."""
    space = SearchSpace()
    if k_values:
        space = dataclasses.replace(space, k=tuple(k_values))
    if covariances:
        space = dataclasses.replace(space, covariance_type=tuple(covariances))
    if n_inits:
        space = dataclasses.replace(space, n_init=tuple(n_inits))
    cfg = SweepConfig(
        symbols=symbols,
        days=days,
        num_samples=num_samples,
        seed=seed,
        space=space,
        scheduler=scheduler,  # type: ignore[arg-type]
        max_concurrent=max_concurrent,
        hmm_n_iter=hmm_n_iter,
    )
    result = run_sweep(
        catalog_root,
        cfg,
        out_dir=out_dir,
        registry_root=registry_root,
        cache_dir=cache_dir,
        address=address,
        num_cpus=num_cpus,
    )
    print_top(result)
    click.echo(f"sweep {result.sweep_id}: best {result.best_trial} -> {result.version}")
