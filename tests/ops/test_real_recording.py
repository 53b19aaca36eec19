"""Issue 6 acceptance: the real spot BTCUSDT recording backtested with a model trained on synthetic
days, end to end through the commands a user types (``nhmm data import-ws``, ``nhmm backtest``,
``nhmm acceptance``, ``nhmm report``): zero NaN, guardrail counts present, acceptance report
written. The run's PnL is whatever the market gives (spot maker fee 10 bp), so the acceptance
exit code may be 1 on the PnL check alone."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from node.run_dir import REASON_CODES
from training.artifacts.registry import Registry
from training.cli import main
from training.data.catalog import MarketCatalog

RECORDING = "spot_btcusdt_20240808.gz"
DAY = "2024-08-08"  # 23:54:13-23:59:59 UTC; the last second spills into 2024-08-09
#: Checks that must pass whatever the market did; the PnL and entropy checks judge the model.
MUST_PASS = (
    "finite_features",
    "finite_inference",
    "position_limit",
    "drawdown_stop",
    "reason_counts",
    "drift_monitor",
    "partial_fit",
)


def _invoke(args: list[str]) -> Any:
    result = CliRunner().invoke(main, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def real_run(
    ws_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    synth_model: tuple[MarketCatalog, Registry],
) -> dict[str, Any]:
    """Import the recording, backtest its day with the synthetic-trained ``candidate`` (strategy
    defaults, trading on), then acceptance and report; every command's result is kept."""
    _, registry = synth_model
    root = tmp_path_factory.mktemp("real_recording")
    catalog, run = root / "catalog", root / "run"
    imported = _invoke(
        ["data", "import-ws", str(ws_dir / RECORDING), "--out", str(catalog), "--no-progress"]
    )
    assert imported.exit_code == 0, imported.output
    backtest = _invoke(
        ["backtest", "--catalog", str(catalog), "--symbol", "BTCUSDT", "--days", DAY,
         "--model", "candidate", "--registry", registry.root, "--out", str(run)]
    )  # fmt: skip
    assert backtest.exit_code == 0, backtest.output
    acceptance = _invoke(["acceptance", str(run)])
    report = _invoke(["report", str(run)])
    return {"run": run, "backtest": backtest, "acceptance": acceptance, "report": report}


def test_backtest_runs_end_to_end_with_zero_nan(real_run: dict[str, Any]) -> None:
    run = real_run["run"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["days"] == [DAY]
    assert summary["model_ref"] == "candidate" and summary["model_version"].startswith("v0001-")
    assert summary["events"] > 100_000  # ~6 minutes of real depth, trades and book tickers
    assert summary["samples"] > 150 and summary["decisions"] == summary["samples"]
    assert summary["inference_status"] == {"ok": summary["samples"], "timeout": 0, "error": 0}
    for key in ("net_pnl", "max_drawdown", "turnover", "fees", "events_per_s"):
        assert math.isfinite(summary[key]), key
    timeline = pq.read_table(run / "timeline.parquet")
    assert timeline.num_rows == summary["samples"]
    assert set(timeline.column("day").to_pylist()) == {DAY}
    for col in ("features", "posterior"):
        flat = timeline.column(col).combine_chunks().flatten().to_numpy()
        assert len(flat) > 0 and np.isfinite(flat).all(), col
    for col in ("confidence", "score", "loglik", "drift", "equity", "position", "mid", "pnl"):
        values = timeline.column(col).to_numpy()
        assert np.isfinite(values).all(), col
    # the features are the spot FEATURES_V1 vector the synthetic model was trained on
    widths = set(timeline.column("features").combine_chunks().value_lengths().to_pylist())
    assert len(widths) == 1 and widths.pop() >= 4


def test_guardrail_counts_present_and_consistent(real_run: dict[str, Any]) -> None:
    run = real_run["run"]
    counts = json.loads((run / "guardrails.json").read_text())
    assert set(counts) == {*REASON_CODES, "OK"}
    assert all(isinstance(v, int) and v >= 0 for v in counts.values())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["guardrails"] == counts
    assert counts["OK"] == summary["entries"] == pq.read_metadata(run / "entries.parquet").num_rows
    verdicts = pq.read_table(run / "timeline.parquet").column("verdict").to_pylist()
    blocks = pq.read_table(run / "blocks.parquet").column("reason").to_pylist()
    for code in REASON_CODES:
        assert verdicts.count(code) == blocks.count(code) == counts[code], code
    assert sum(counts.values()) + verdicts.count("FLAT") == summary["samples"]
    assert sum(counts[c] for c in REASON_CODES) > 0  # some guardrail fired on the real day


def test_acceptance_report_written_and_must_pass_checks_pass(real_run: dict[str, Any]) -> None:
    run, result = real_run["run"], real_run["acceptance"]
    doc = json.loads((run / "acceptance.json").read_text())
    by = {(c["name"], c["day"]): c for c in doc["checks"]}
    assert {d for _, d in by} == {DAY, "ALL"}
    for name in MUST_PASS:
        assert by[(name, DAY)]["passed"], by[(name, DAY)]
    assert by[("reason_counts", "ALL")]["passed"], by[("reason_counts", "ALL")]
    assert by[("finite_features", DAY)]["value"] == 0
    assert by[("finite_inference", DAY)]["value"] == 0
    assert by[("position_limit", DAY)]["threshold"] == 0.01  # the default max_position
    assert (
        by[("drift_monitor", DAY)]["value"]
        == json.loads((run / "summary.json").read_text())["samples"]
    )
    pnl = by[("pnl_expectation", DAY)]
    assert "95% CI" in pnl["detail"] and math.isfinite(pnl["value"])
    entropy = by[("state_entropy", DAY)]
    assert math.isfinite(entropy["value"]) and entropy["value"] >= 0.0
    failed = {c["name"] for c in doc["checks"] if not c["passed"]}
    assert failed <= {"pnl_expectation", "state_entropy"}
    assert doc["passed"] is (not failed) and doc["n_failed"] == len(failed)
    assert result.exit_code == (1 if failed else 0), result.output
    assert f"{doc['n_checks'] - len(failed)}/{doc['n_checks']} checks passed" in result.output


def test_report_renders_the_real_run(real_run: dict[str, Any]) -> None:
    run, result = real_run["run"], real_run["report"]
    assert result.exit_code == 0, result.output
    page = run / "report.html"
    assert f"wrote {page}" in result.output
    html = page.read_text()
    assert html.count('src="data:image/png;base64,') >= 5
    assert "pnl_expectation" in html and "partial_fit" in html
    assert "No acceptance.json" not in html
