"""One trial's work and its results: fit and validate fold after fold, rows, the winner.

Per fold, the trade simulator trades the validation day with the fold's model (the strategy's
rules, the cost model): ``net_bp_per_day`` is its net PnL per day in bp of one order's notional
(scale-free across symbols). The objective is conservative: the mean over the folds minus one
standard error of that mean (``std(ddof=1) / sqrt(n)``; with one fold, minus its absolute
value, i.e. never above 0), so a config must earn consistently, not on one lucky day. A trial
reports once per fold, so ASHA can stop weak trials early. A model that leaves a state (almost)
unused is degenerate and rejected, as is a fold whose fit fails on the data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from training.errors import BadInputError
from training.features import FeatureSchema
from training.features.bars.schema import BarFeatureSchema
from training.pipelines.feature_set import FeatureSet
from training.pipelines.sweep.space import train_config
from training.pipelines.train import evaluate_model
from training.pipelines.train import fit_model

__all__ = [
    "REJECTED_SCORE",
    "REPORTED",
    "NoUsableTrialError",
    "best_row",
    "conservative_score",
    "table_rows",
    "trial_reports",
    "trial_row",
    "tune_rows",
    "tune_trial",
]

REJECTED_SCORE = -1.0e9  # Parquet and Tune both choke on -inf; rows also carry rejected=True
REPORTED = (
    "net_bp_per_day",
    "net_pnl_per_day",
    "round_trips_per_day",
    "gross_edge_bp_per_rt",
    "cost_bp_per_rt",
    "valid_bic",
    "valid_loglik_per_sample",
    "posterior_entropy",
    "state_occupancy_min",
    "policy_accuracy",
)
#: The per-fold figure the objective is made of.
FOLD_FIGURE = "net_bp_per_day"


def conservative_score(values: list[float]) -> tuple[float, float, float]:
    """``(score, mean, standard error)``: mean minus one standard error of the mean over the
    folds; with one fold the SE is unknown and the score is ``min(mean, 0)`` minus nothing more
    than the mean's own size (``mean - |mean|``).

    >>> conservative_score([4.0, 2.0])
    (2.0, 3.0, 1.0)
    >>> conservative_score([5.0])
    (0.0, 5.0, 5.0)
    """
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    se = float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else abs(mean)
    return mean - se, mean, se


class NoUsableTrialError(BadInputError, RuntimeError):
    """No trial completed every fold without rejection: the data gave no usable model."""


def trial_reports(
    config: dict[str, Any],
    folds: list[tuple[FeatureSet, FeatureSet]],
    schema: FeatureSchema | BarFeatureSchema,
    settings: dict[str, Any],
) -> Iterator[dict[str, Any]]:
    """One trial's work: fit and validate fold after fold, yielding the running report after
    each; a rejected fold yields a final report with ``rejected=True`` and stops."""
    tc = train_config(config, settings)
    pnl: list[float] = []
    flat: dict[str, float] = {}
    for i, (train_set, valid_set) in enumerate(folds):
        t0 = time.perf_counter()
        reason = ""
        try:
            metrics = evaluate_model(fit_model(train_set, schema, tc), valid_set, tc)
        except (BadInputError, np.linalg.LinAlgError) as exc:  # e.g. no K-state fit converged
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
        pnl.append(metrics[FOLD_FIGURE])
        flat.update({f"f{i}_{k}": float(metrics[k]) for k in REPORTED})
        flat[f"f{i}_fit_s"] = time.perf_counter() - t0
        score, mean, se = conservative_score(pnl)
        yield {
            "objective": score,
            "fold_mean": mean,
            "fold_se": se,
            "rejected": False,
            "reason": "",
            "folds_done": i + 1,
            **{k: float(np.mean([flat[f"f{j}_{k}"] for j in range(i + 1)])) for k in REPORTED},
            **flat,
        }


def tune_trial(
    config: dict[str, Any],
    folds: list[tuple[FeatureSet, FeatureSet]] | None = None,
    schema: FeatureSchema | BarFeatureSchema | None = None,
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
        fold_mean=float(m.get("fold_mean", REJECTED_SCORE)),
        fold_se=float(m.get("fold_se", 0.0)),
    )
    row.update(
        {k: float(v) for k, v in m.items() if k in REPORTED or (k[:1] == "f" and k[1:2].isdigit())}
    )
    return row


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = sorted(rows, key=lambda row: row["trial"])
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return [{k: row.get(k) for k in keys} for row in rows]


def tune_rows(results: Any, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {t["trial"]: t for t in trials}
    rows = []
    for r in results:
        if r.config is None:
            continue
        cfg = r.config.get("trial", r.config)
        rows.append(trial_row(by_name[cfg["trial"]], r.metrics, str(r.error) if r.error else ""))
    return table_rows(rows)


def best_row(rows: list[dict[str, Any]], n_folds: int) -> dict[str, Any]:
    """The winning row: highest objective among trials that completed every fold unrejected
    (ties broken by trial id, so the choice is deterministic)."""
    ok = [r for r in rows if not r["rejected"] and r["folds_done"] == n_folds]
    if not ok:
        raise NoUsableTrialError(
            "no trial completed every fold without rejection: "
            + "; ".join(f"{r['trial']}: {r['reason'] or 'stopped early'}" for r in rows[:10])
        )
    return max(ok, key=lambda r: (r["objective"], [-ord(c) for c in r["trial"]]))
