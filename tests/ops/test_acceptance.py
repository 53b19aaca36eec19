"""``nhmm acceptance``: every check passes on a sound RUN_DIR and each fails alone when its one
thing is broken; acceptance.json, exit codes, bad input; a real backtest's RUN_DIR."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from node.run_dir import RunDirError
from node.run_dir import load_run
from ops.acceptance import AcceptanceConfig
from ops.acceptance import run_acceptance
from ops.acceptance.checks import run_checks
from ops.acceptance.stats import block_bootstrap_ci
from ops.acceptance.stats import state_entropy_bits
from tests.run_dir_setup import DAYS
from tests.run_dir_setup import MAX_DRAWDOWN
from tests.run_dir_setup import ROWS_PER_DAY
from tests.run_dir_setup import make_spec
from tests.run_dir_setup import write_run
from training.cli import main

CHECK_NAMES = (
    "finite_features",
    "finite_inference",
    "state_entropy",
    "position_limit",
    "drawdown_stop",
    "reason_counts",
    "pnl_expectation",
    "drift_monitor",
    "partial_fit",
)
D1, D2 = DAYS


def failures(spec: dict[str, Any], out: Path, cfg: AcceptanceConfig | None = None) -> set:
    write_run(spec, out)
    return {(c.name, c.day) for c in run_checks(load_run(out), cfg) if not c.passed}


def test_sound_run_passes_every_check_and_writes_acceptance_json(
    good_spec: dict[str, Any], tmp_path: Path
) -> None:
    write_run(good_spec, tmp_path)
    result = CliRunner().invoke(main, ["acceptance", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "19/19 checks passed" in result.output
    doc = json.loads((tmp_path / "acceptance.json").read_text())
    assert doc["passed"] is True and doc["n_failed"] == 0
    checks = doc["checks"]
    assert len(checks) == len(DAYS) * len(CHECK_NAMES) + 1
    assert {(c["name"], c["day"]) for c in checks} == {
        *((n, d) for n in CHECK_NAMES for d in DAYS),
        ("reason_counts", "ALL"),
    }
    for c in checks:
        assert set(c) == {"name", "day", "passed", "value", "threshold", "detail", "verdict"}
    by = {(c["name"], c["day"]): c for c in checks}
    assert by[("position_limit", D1)]["threshold"] == 0.01
    assert by[("position_limit", D1)]["value"] == pytest.approx(0.003)
    assert by[("state_entropy", D1)]["value"] == pytest.approx(np.log2(3), abs=0.02)
    assert by[("drift_monitor", D2)]["value"] == ROWS_PER_DAY
    assert "95% CI" in by[("pnl_expectation", D1)]["detail"]
    # the inference failure row (state -1, empty posterior, confidence -1) is not a NaN
    assert by[("finite_inference", D1)]["value"] == 0


def _set(col: str, day: int, row: int, value: Any) -> Callable[[dict], None]:
    def mutate(spec: dict) -> None:
        spec["timeline"][col][day * ROWS_PER_DAY + row] = value

    return mutate


def _stuck(spec: dict) -> None:
    for i in range(ROWS_PER_DAY):
        if spec["timeline"]["state"][i] >= 0:
            spec["timeline"]["state"][i] = 1


def _fills_accumulate(spec: dict) -> None:
    for f in spec["fills"][4:]:
        f["order_side"], f["last_qty"] = "BUY", "0.004"  # day 2: 0.004 x 4 = 0.016


def _losing_day(spec: dict) -> None:
    tl = spec["timeline"]
    for i in range(ROWS_PER_DAY):
        tl["pnl"][i] = -0.01 * i


def _count_off(spec: dict) -> None:
    spec["guardrails"]["POS"] += 1


def _drop_block(spec: dict) -> None:
    for k in spec["blocks"]:
        spec["blocks"][k].pop(0)  # first block of day 1


def _drift_idle(spec: dict) -> None:
    spec["adaptation"]["days"][1]["drift"]["n_samples"] = 0


def _pf_error(spec: dict) -> None:
    spec["adaptation"]["days"][0]["partial_fit"]["error"] = "ValueError: boom"


def _pf_nan(spec: dict) -> None:
    spec["adaptation"]["days"][1]["partial_fit"]["heldout_ll_after"] = None


def _dd_then_entry(spec: dict) -> None:
    """Equity falls 150 below its peak on day 2 at row 300; entries continue after (row 310...)."""
    tl = spec["timeline"]
    for i in range(ROWS_PER_DAY + 300, 2 * ROWS_PER_DAY):
        tl["equity"][i] -= 1.5 * MAX_DRAWDOWN


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_set("features", 1, 42, [0.1, float("nan"), 0.2, 0.3]), {("finite_features", D2)}),
        (_set("posterior", 0, 12, [0.5, float("inf"), 0.0]), {("finite_inference", D1)}),
        (_set("confidence", 1, 5, float("nan")), {("finite_inference", D2)}),
        (_set("drift", 0, 9, float("inf")), {("finite_inference", D1)}),
        (_stuck, {("state_entropy", D1)}),
        (_set("position", 1, 33, -0.0125), {("position_limit", D2)}),
        (_fills_accumulate, {("position_limit", D2)}),
        (_dd_then_entry, {("drawdown_stop", D2)}),
        (_losing_day, {("pnl_expectation", D1)}),
        (_count_off, {("reason_counts", "ALL")}),
        (_drop_block, {("reason_counts", D1), ("reason_counts", "ALL")}),
        (_drift_idle, {("drift_monitor", D2)}),
        (_pf_error, {("partial_fit", D1)}),
        (_pf_nan, {("partial_fit", D2)}),
    ],
    ids=[
        "nan-feature",
        "inf-posterior",
        "nan-confidence",
        "inf-drift",
        "stuck-state",
        "position",
        "fills-position",
        "dd-then-entry",
        "losing-day",
        "count-off",
        "block-missing",
        "drift-idle",
        "partial-fit-error",
        "partial-fit-nan",
    ],
)
def test_each_check_fails_alone(
    good_spec: dict[str, Any],
    tmp_path: Path,
    mutate: Callable[[dict], None],
    expected: set,
) -> None:
    mutate(good_spec)
    assert failures(good_spec, tmp_path) == expected


def test_partial_fit_refused_before_scoring_passes(
    good_spec: dict[str, Any], tmp_path: Path
) -> None:
    """A child the held-out guard refuses unscored is the guard working: no "after" value."""
    pf = good_spec["adaptation"]["days"][1]["partial_fit"]
    pf.update(accepted=False, reason="state identity changed", heldout_ll_after=None)
    assert failures(good_spec, tmp_path) == set()


def test_drawdown_stop_honoured_passes_and_names_the_moment(
    good_spec: dict[str, Any], tmp_path: Path
) -> None:
    """The same breach with no entry from that sample on is the stop working, not a failure."""
    _dd_then_entry(good_spec)
    tl, stop = good_spec["timeline"], ROWS_PER_DAY + 300
    keep = [ts < tl["ts"][stop] for ts in good_spec["entries"]["ts"]]
    for k, col in good_spec["entries"].items():
        good_spec["entries"][k] = [v for v, kept in zip(col, keep, strict=True) if kept]
    good_spec["guardrails"]["OK"] = len(good_spec["entries"]["ts"])
    for i in range(stop, 2 * ROWS_PER_DAY):
        if tl["verdict"][i] == "OK":
            tl["verdict"][i] = "FLAT"
    write_run(good_spec, tmp_path)
    checks = {(c.name, c.day): c for c in run_checks(load_run(tmp_path))}
    dd = checks[("drawdown_stop", D2)]
    assert dd.passed and dd.value == 0
    assert "fired at 2024-01-02T00:06:00" in dd.detail
    assert all(c.passed for c in checks.values())


def test_drawdown_stop_counts_fills_that_grow_the_position_after_it(
    good_spec: dict[str, Any], tmp_path: Path
) -> None:
    """Issue 12: no entry after the stop, but an entry resting through it fills later: the stop
    failed (the fill is counted); a fill that shrinks the position (the KILL exit) is not."""
    test_drawdown_stop_honoured_passes_and_names_the_moment(good_spec, tmp_path / "ok")
    day2 = good_spec["timeline"]["day"][ROWS_PER_DAY]
    late = {"last_qty": "0.003", "last_px": "42000.00", "commission": "0.01 USDT"}
    good_spec["fills"].append({**late, "order_side": "BUY", "ts_event": f"{day2}T00:07:00+00:00"})
    write_run(good_spec, tmp_path / "late")
    checks = {(c.name, c.day): c for c in run_checks(load_run(tmp_path / "late"))}
    dd = checks[("drawdown_stop", D2)]
    assert not dd.passed and dd.value == 1.0 and "1 fills growing" in dd.detail
    good_spec["fills"].append({**late, "order_side": "SELL", "ts_event": f"{day2}T00:07:01+00:00"})
    write_run(good_spec, tmp_path / "exit")
    checks = {(c.name, c.day): c for c in run_checks(load_run(tmp_path / "exit"))}
    assert checks[("drawdown_stop", D2)].value == 1.0  # the closing fill is not counted


def test_pnl_rule_mean_vs_lower_bound(good_spec: dict[str, Any], tmp_path: Path) -> None:
    """A day whose mean change is positive but whose CI straddles 0 passes by the mean and fails
    by the lower bound."""
    tl = good_spec["timeline"]
    rng = np.random.default_rng(0)
    steps = rng.normal(0.0, 1.0, ROWS_PER_DAY // 60)
    steps += 0.1 - steps.mean()  # mean +0.1 per minute, sd ~1
    curve = np.repeat(np.cumsum(steps), 60)
    for i in range(ROWS_PER_DAY):
        tl["pnl"][i] = float(curve[i])
    assert failures(good_spec, tmp_path) == set()
    lower = AcceptanceConfig(pnl_rule="lower")
    assert failures(good_spec, tmp_path, lower) == {("pnl_expectation", D1)}


def test_missing_contract_files_fail_their_checks(
    good_spec: dict[str, Any], tmp_path: Path
) -> None:
    good_spec["adaptation"] = good_spec["guardrails"] = good_spec["config"] = None
    del good_spec["timeline"]["features"]
    failed = failures(good_spec, tmp_path)
    for day in DAYS:
        for name in (
            "finite_features",
            "drift_monitor",
            "partial_fit",
            "position_limit",
            "drawdown_stop",
            "reason_counts",
        ):
            assert (name, day) in failed
    assert ("reason_counts", "ALL") in failed
    assert ("state_entropy", D1) not in failed


def test_cli_exit_codes_and_bad_input(good_spec: dict[str, Any], tmp_path: Path) -> None:
    _stuck(good_spec)
    run = write_run(good_spec, tmp_path / "bad")
    result = CliRunner().invoke(main, ["acceptance", str(run)])
    assert result.exit_code == 1
    assert "FAIL" in result.output and "18/19 checks passed" in result.output
    assert json.loads((run / "acceptance.json").read_text())["n_failed"] == 1

    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, ["acceptance", str(empty)])
    assert result.exit_code == 2
    assert "timeline.parquet: missing" in result.output
    assert not (empty / "acceptance.json").exists()

    broken = write_run(make_spec(), tmp_path / "broken")
    (broken / "config.json").write_text('{"strategy": {\n  "max_position": 0.01,,\n}}')
    with pytest.raises(RunDirError, match=r"config\.json:2: not valid JSON"):
        run_acceptance(broken)
    assert not (broken / "acceptance.json").exists()


def test_state_entropy_and_bootstrap_ci() -> None:
    assert state_entropy_bits(np.array([0, 1, 2, 3] * 5)) == pytest.approx(2.0)
    assert state_entropy_bits(np.array([], dtype=np.int64)) == 0.0
    rng = np.random.default_rng(1)
    x = rng.normal(0.5, 1.0, 400)
    mean, lo, hi = block_bootstrap_ci(x, seed=2)
    assert mean == pytest.approx(x.mean()) and 0.0 < lo < mean < hi
    assert hi - lo == pytest.approx(2 * 1.96 * x.std() / np.sqrt(len(x)), rel=0.3)
    assert block_bootstrap_ci(np.full(50, 0.25)) == pytest.approx((0.25, 0.25, 0.25))
    # the 95% interval of iid noise covers the true mean most of the time
    covered = 0
    for seed in range(40):
        _, lo, hi = block_bootstrap_ci(rng.normal(0.0, 1.0, 200), n_boot=400, seed=seed)
        covered += lo <= 0.0 <= hi
    assert covered >= 33


def test_acceptance_on_a_real_backtest_run(backtest_run: Path) -> None:
    """The backtest's own files, read as written: every check but the PnL one passes (the
    synthetic market moves less than the maker fee, so its PnL is whatever it is)."""
    passed, checks = run_acceptance(backtest_run)
    days = sorted({c.day for c in checks} - {"ALL"})
    assert len(days) == 1
    assert {c.name for c in checks} == set(CHECK_NAMES)
    failed = [c for c in checks if not c.passed and c.name != "pnl_expectation"]
    assert failed == []
    by = {(c.name, c.day): c for c in checks}
    day = days[0]
    assert by[("state_entropy", day)].value > 0.5
    assert by[("drift_monitor", day)].value > 1000
    assert 0 < by[("position_limit", day)].value <= by[("position_limit", day)].threshold
    assert "95% CI" in by[("pnl_expectation", day)].detail
    doc = json.loads((backtest_run / "acceptance.json").read_text())
    assert doc["passed"] is passed and len(doc["checks"]) == len(checks)


def test_a_day_without_trades_is_no_trades_not_pass(
    good_spec: dict[str, Any], tmp_path: Path
) -> None:
    """Issue 11: a day with no fill has no PnL expectation to judge: its own verdict, a failure
    (a strategy that never trades used to pass with mean 0 >= 0); the CI is still reported."""
    good_spec["fills"] = [f for f in good_spec["fills"] if not f["ts_event"].startswith(D2)]
    write_run(good_spec, tmp_path)
    checks = {(c.name, c.day): c for c in run_checks(load_run(tmp_path))}
    c2, c1 = checks[("pnl_expectation", D2)], checks[("pnl_expectation", D1)]
    assert not c2.passed and c2.verdict == "no_trades" and "CI [" in c2.detail
    assert c1.passed and c1.verdict == "PASS" and "fills 4" in c1.detail
    passed, _ = run_acceptance(tmp_path)
    doc = json.loads((tmp_path / "acceptance.json").read_text())
    assert not passed and {c["verdict"] for c in doc["checks"]} >= {"PASS", "no_trades"}


def test_acceptance_json_says_in_sample(good_spec: dict[str, Any], tmp_path: Path) -> None:
    good_spec["summary"].update(in_sample=True, in_sample_days=[f"BTCUSDT.BINANCE/{D1}"])
    write_run(good_spec, tmp_path)
    run_acceptance(tmp_path)
    doc = json.loads((tmp_path / "acceptance.json").read_text())
    assert doc["in_sample"] is True and doc["in_sample_days"] == [f"BTCUSDT.BINANCE/{D1}"]
