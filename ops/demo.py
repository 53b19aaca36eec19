"""``make demo``: the whole pipeline on a small synthetic market and the real recordings.

Each step is the ``nhmm`` command a user would type, echoed before it runs, so the demo doubles
as a walkthrough: synthetic days -> features -> model -> backtest on the last synthetic day and on
the real spot BTCUSDT recording -> acceptance checks -> HTML report. ``nhmm acceptance`` exits 1
when a check fails (usually the PnL one on a short day); the demo shows the table and goes on.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_WS = REPO.parent / "shared" / "data" / "binance-ws"
START = datetime.date(2024, 1, 1)


def _run(args: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> int:
    """Run ``nhmm ARGS``; an exit code outside ``ok`` stops the demo."""
    print(f"\n$ nhmm {shlex.join(args)}", flush=True)
    t0 = time.perf_counter()
    rc = subprocess.run([sys.executable, "-m", "training.cli", *args], env=env, cwd=REPO).returncode
    print(f"  (exit {rc}, {time.perf_counter() - t0:.1f} s)", flush=True)
    if rc not in ok:
        raise subprocess.CalledProcessError(rc, ["nhmm", *args])
    return rc


def _check_and_report(run: Path, env: dict[str, str]) -> Path:
    """``nhmm acceptance`` (exit 1 = some check failed: shown, not fatal), then ``nhmm report``."""
    _run(["acceptance", str(run)], env, ok=(0, 1))
    _run(["report", str(run)], env)
    return run / "report.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo_run"))
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--day-seconds", type=int, default=4 * 3600)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    out = args.out.resolve()
    catalog, registry = out / "catalog", out / "model_store"
    env = {**os.environ, "NHMM_REGISTRY": str(registry)}
    synth = ["data", "synth", "--symbol", "BTCUSDT", "--days", str(args.days)]
    synth += ["--seed", str(args.seed), "--day-seconds", str(args.day_seconds)]
    synth += ["--start", START.isoformat()]
    _run([*synth, "--out", str(catalog)], env)
    real_catalog = out / "catalog_real"
    if SHARED_WS.is_dir():
        spot = [str(SHARED_WS / f"spot_btcusdt_2024080{d}.gz") for d in (8, 9)]
        _run(["data", "import-ws", *spot, "--out", str(real_catalog)], env)
    _run(["features", "extract", "--catalog", str(catalog), "--symbol", "BTCUSDT",
          "--out", str(out / "features")], env)  # fmt: skip
    # fitted on every day but the last, which is its untouched test period: `nhmm train` prints
    # the `test` block (simulated net PnL per day with its CI, gross edge and costs per round
    # trip); the label horizon is chosen on the training days so the typical move pays the
    # instrument's round trip (2 x 10 bp maker at spot)
    _run(["train", "--catalog", str(catalog), "--symbol", "BTCUSDT", "--covariance", "diag",
          "--n-init", "2"], env)  # fmt: skip
    _run(["models", "promote", "candidate"], env)
    _run(["models", "list"], env)
    last_day = (START + datetime.timedelta(days=args.days - 1)).isoformat()
    # the test day in Nautilus: its summary prints the model's simulated `test` figures beside
    # the backtest's own, so the two can be compared
    print("\nbacktest of the held-out test day: compare net_pnl with the `model test` line")
    _run(["backtest", "--catalog", str(catalog), "--symbol", "BTCUSDT", "--days", last_day,
          "--model", "live", "--out", str(out / "run")], env)  # fmt: skip
    reports = [_check_and_report(out / "run", env)]
    if SHARED_WS.is_dir():
        # the synthetic-trained model on the whole real recording (one stream over midnight)
        print("\nreal recording: 23:54-00:05 UTC; the features warm up for min_periods_s (600 s)"
              " first, so 2024-08-08 has no samples and fails the checks that need some")  # fmt: skip
        _run(["backtest", "--catalog", str(real_catalog), "--symbol", "BTCUSDT",
              "--model", "live", "--out", str(out / "run_real")], env)  # fmt: skip
        reports.append(_check_and_report(out / "run_real", env))
    print(f"\ndemo outputs under {out}")
    for page in reports:
        print(f"report: {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
