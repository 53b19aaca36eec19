"""In-process inference latency (forward-filter step + policy head), partial_fit and HMM fit time.

Targets: filter step + policy predict p50 <= 100 µs; partial_fit on 300 samples <= 50 ms (with
the trained memory: reservoir guard and policy re-check; the window-only guard is its baseline).
Baselines measured in the same process: XGBoost ``inplace_predict`` on one row (what
``PolicyHead.predict_row`` replaces with a numpy tree walk), XGBoost ``predict`` through a
``DMatrix``, and hmmlearn ``predict_proba`` on one row (what a naive server would call; also
wrong, it ignores the carried posterior). Writes bench/results/bench_inference.json and prints a table.

Usage: ``python bench/bench_inference.py [--quick]`` (``--quick``: a 6 h "day" for the fit).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving.adapt import policy_actions
from training.models.hmm import ForwardFilter
from training.models.hmm import HMMConfig
from training.models.hmm import HMMParams
from training.models.hmm import fit_hmm
from training.models.hmm import sample_hmm
from training.models.online import partial_fit
from training.models.online import training_memory
from training.models.policy import PolicyConfig
from training.models.policy import fit_policy
from training.models.policy import policy_inputs

K, D = 4, 10
RESULTS = Path(__file__).resolve().parent / "results"


def day_model(seed: int = 0) -> HMMParams:
    """A K=4, D=10 regime model with correlated features and sticky transitions."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 1.0, size=(K, D))
    covs = []
    for _ in range(K):
        a = rng.normal(0.0, 0.3, size=(D, D))
        covs.append(a @ a.T + 0.5 * np.eye(D))
    T = np.full((K, K), 0.002 / (K - 1))
    np.fill_diagonal(T, 0.998)
    return HMMParams(np.full(K, 1.0 / K), T, means, np.stack(covs))


def latency(fn: Callable[[], object], n: int, warmup: int = 200) -> dict[str, float]:
    """p50/p99/mean in microseconds over ``n`` calls."""
    for _ in range(warmup):
        fn()
    out = np.empty(n)
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        fn()
        out[i] = clock() - t0
    us = out / 1e3
    return {
        "p50_us": float(np.percentile(us, 50)),
        "p99_us": float(np.percentile(us, 99)),
        "mean_us": float(us.mean()),
        "n": n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fit on 21600 samples instead of 86400")
    ap.add_argument("--n", type=int, default=5000, help="calls per latency measurement")
    args = ap.parse_args()
    n_day = 21_600 if args.quick else 86_400

    truth = day_model()
    X, _ = sample_hmm(truth, n_day, seed=1)
    results: dict[str, object] = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "n_day": n_day,
    }

    # --- HMM fit: K=4 full, 5 inits, on a day-sized array
    t0 = time.perf_counter()
    fit = fit_hmm(
        X, config=HMMConfig(k_range=(K, K), n_init=5, covariance_type="full"), progress=True
    )
    fit_s = time.perf_counter() - t0
    results["hmm_fit"] = {
        "seconds": fit_s,
        "k": fit.k,
        "n_init": 5,
        "iters": [c["n_iter"] for c in fit.candidates],
        "ok": [c["ok"] for c in fit.candidates],
    }

    # --- filtered posteriors over the day (offline run) and a policy head on them
    f = ForwardFilter(fit.params)
    t0 = time.perf_counter()
    run = f.run(X)
    results["filter_run"] = {
        "seconds": time.perf_counter() - t0,
        "rows_per_s": n_day / (time.perf_counter() - t0),
    }
    rng = np.random.default_rng(2)
    signal = (
        X[:, 0] + 2.0 * (run.posteriors[:, 0] - run.posteriors[:, -1]) + rng.normal(0, 1, n_day)
    )
    labels = np.where(signal > 1.0, 2, np.where(signal < -1.0, 0, 1))
    t0 = time.perf_counter()
    head = fit_policy(run.posteriors, X, labels, PolicyConfig())
    results["policy_fit"] = {
        "seconds": time.perf_counter() - t0,
        "rounds": head.booster.num_boosted_rounds(),
    }

    # --- single-sample latencies
    x = X[1000]
    prev = run.log_posteriors[999]
    row = policy_inputs(run.posteriors[1000:1001], X[1000:1001])[0]

    def infer() -> tuple[str, float]:
        s = f.step(x, prev)
        proba = head.predict_row(np.concatenate([s.posterior, x]))
        return head.decide(proba)

    import xgboost as xgb
    from hmmlearn.hmm import GaussianHMM

    hl = GaussianHMM(n_components=K, covariance_type="full", init_params="")
    hl.startprob_, hl.transmat_, hl.means_, hl.covars_ = (
        fit.params.startprob, fit.params.transmat, fit.params.means, fit.params.covars,
    )  # fmt: skip
    one = x[None, :]
    rows = row[None, :]
    lat = {
        "filter_step": latency(lambda: f.step(x, prev), args.n),
        "policy_predict_row": latency(lambda: head.predict_row(row), args.n),
        "infer_total (step+policy+decide)": latency(infer, args.n),
        "baseline xgboost inplace_predict 1 row": latency(
            lambda: head.predict_row_xgb(row), args.n
        ),
        "baseline hmmlearn predict_proba 1 row": latency(
            lambda: hl.predict_proba(one), args.n // 5
        ),
        "baseline xgboost DMatrix predict 1 row": latency(
            lambda: head.booster.predict(xgb.DMatrix(rows)), args.n // 5
        ),
    }
    results["latency"] = lat

    # --- partial_fit on 300 samples (server side): the memory, reservoir guard and policy
    # check a trained bundle carries
    memory = training_memory(fit.params, X)
    t0 = time.perf_counter()
    training_memory(fit.params, X)
    results["training_memory_s"] = time.perf_counter() - t0

    batches = [X[i : i + 300] for i in range(0, 300 * 40, 300)]
    durations = []
    stats = memory.stats
    cur = fit.params
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b in batches:
            t0 = time.perf_counter()
            res, stats = partial_fit(
                cur, b, stats=stats, reservoir=memory.reservoir, actions=policy_actions(head)
            )
            durations.append((time.perf_counter() - t0) * 1e3)
            cur = res.params
    plain = []  # baseline: the same updates guarded on the window alone (no reservoir, policy)
    cur, stats = fit.params, memory.stats
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b in batches:
            t0 = time.perf_counter()
            res, stats = partial_fit(cur, b, stats=stats)
            plain.append((time.perf_counter() - t0) * 1e3)
            cur = res.params
    ms = np.array(durations)
    results["partial_fit_300"] = {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "n": len(ms),
        "target_ms": 50.0,
        "reservoir_rows": memory.reservoir.n_rows,
        "window_only_p50_ms": float(np.percentile(plain, 50)),
        "window_only_p99_ms": float(np.percentile(plain, 99)),
    }
    total_p50 = lat["infer_total (step+policy+decide)"]["p50_us"]
    results["targets"] = {
        "infer_p50_us": {"target": 100.0, "measured": total_p50, "met": total_p50 <= 100.0},
        "partial_fit_p50_ms": {
            "target": 50.0,
            "measured": float(np.percentile(ms, 50)),
            "met": float(np.percentile(ms, 50)) <= 50.0,
        },
    }

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "bench_inference.json"
    out.write_text(json.dumps(results, indent=2))

    print(
        f"\nHMM fit K={K} full, 5 inits, {n_day}x{D}: {fit_s:.1f} s (iters {results['hmm_fit']['iters']})"
    )
    print(f"filter run over the day: {results['filter_run']['rows_per_s']:.0f} rows/s")
    print(f"{'latency (µs)':<42}{'p50':>10}{'p99':>10}")
    for name, v in lat.items():
        print(f"{name:<42}{v['p50_us']:>10.1f}{v['p99_us']:>10.1f}")
    pf = results["partial_fit_300"]
    print(f"{'partial_fit 300 samples (ms)':<42}{pf['p50_ms']:>10.2f}{pf['p99_ms']:>10.2f}")
    print(
        f"{'  baseline: window-only guard (ms)':<42}"
        f"{pf['window_only_p50_ms']:>10.2f}{pf['window_only_p99_ms']:>10.2f}"
    )
    for name, t in results["targets"].items():
        print(
            f"target {name}: {t['measured']:.2f} vs {t['target']} -> {'OK' if t['met'] else 'MISSED'}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
