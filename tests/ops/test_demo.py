"""``make demo`` end to end at a small size (:mod:`tests.demo_setup`): Tune sweep with a held-out
day -> registry -> ``serve run`` -> held-out backtest through Serve -> acceptance and report ->
replayed live node via Serve -> rollup -> clean stop, nothing left running. The 15-minute
budget at the default size is ``bench/bench_demo.py``'s."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ops._procs import ProcessWatch
from ops._procs import process_table
from ops.demo import DemoConfig
from ops.demo import DemoError
from ops.demo import run_demo
from tests.demo_setup import REPO
from tests.demo_setup import TINY
from tests.demo_setup import DemoRun
from tests.demo_setup import tiny_demo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def demo() -> DemoRun:
    run = tiny_demo()
    assert run.exit_code == 0, run.output[-6000:]
    return run


def _steps(run: DemoRun) -> list[str]:
    return [shlex.split(c)[0] + " " + shlex.split(c)[1] for c in run.commands]


def test_make_demo_runs_ops_demo() -> None:
    recipe = re.search(r"^demo:.*\n\t(.+)$", (REPO / "Makefile").read_text(), re.M)
    assert recipe is not None and recipe.group(1) == "$(BIN)/python -m ops.demo --out $(DEMO)"


def test_every_step_is_echoed_as_a_command_in_order(demo: DemoRun) -> None:
    cmds = demo.commands
    order = ["export NHMM_REGISTRY=", "export RAY_TMPDIR=", "nhmm data synth", "nhmm sweep",
             "nhmm models promote candidate", "nhmm models list", "serve run ", "curl -sf ",
             "nhmm backtest", "nhmm acceptance", "nhmm report", "python node/run.py",
             "nhmm rollup", "kill -INT "]  # fmt: skip
    at = [next(i for i, c in enumerate(cmds) if c.startswith(p)) for p in order]
    assert at == sorted(at), cmds
    for c in cmds:  # each echoed line was printed as typed, with its `$ `
        assert f"$ {c}" in demo.output
    search, held_out = (shlex.split(c) for c in cmds if c.startswith("nhmm data synth"))
    for synth, days, start, seed in ((search, "3", "2024-01-01", "7"),
                                     (held_out, "1", "2024-01-04", "8")):  # fmt: skip
        assert synth[synth.index("--days") + 1] == days
        assert synth[synth.index("--start") + 1] == start
        assert synth[synth.index("--seed") + 1] == seed  # the held-out day is no search day's copy
    held_out_s = TINY[TINY.index("--held-out-seconds") + 1]  # the test's size, not day_seconds
    assert held_out[held_out.index("--day-seconds") + 1] == held_out_s
    sweep = next(c for c in cmds if c.startswith("nhmm sweep"))
    assert "--test-days 1" in sweep and "--num-samples 2" in sweep
    serve_url = demo.result["serve_url"]
    backtest = next(c for c in cmds if c.startswith("nhmm backtest"))
    assert f"--serve {serve_url}" in backtest and "--days 2024-01-04" in backtest
    node = next(c for c in cmds if c.startswith("python node/run.py"))
    assert f"--serve {serve_url}" in node
    assert "--replay ../shared/data/binance-ws/spot_btcusdt_20240808.gz" in node
    assert ":8000" not in serve_url  # its own port, never the default one


def test_sweep_held_out_the_last_day_and_its_test_block_has_a_ci(demo: DemoRun) -> None:
    sweep = demo.result["sweep"]
    assert sweep["test_symbol_days"] == ["BTCUSDT.BINANCE/2024-01-04"]
    assert all(not d.endswith("2024-01-04") for d in sweep["symbol_days"])
    test = sweep["test"]
    lo, hi = test["net_pnl_per_day_ci"]
    assert lo <= test["net_pnl_per_day"] <= hi and test["in_sample"] is False
    assert "out-of-sample" in test["kind"]


def test_the_promoted_winner_answered_the_backtest_through_serve(demo: DemoRun) -> None:
    out = demo.out
    live = json.loads((out / "model_store" / "aliases" / "live.json").read_text())
    model = json.loads((out / "backtest" / "config.json").read_text())["model"]
    assert model["version"] == live["version"] == demo.result["sweep"]["version"]
    assert model["serve_url"] == demo.result["serve_url"]
    assert demo.result["backtest"]["in_sample"] is False
    timeline = pq.read_table(out / "backtest" / "timeline.parquet")
    assert timeline.num_rows > 0 and set(timeline.column("day").to_pylist()) == {"2024-01-04"}
    statuses = set(timeline.column("status").to_pylist())
    assert "ok" in statuses, statuses  # Serve answered
    assert (out / "backtest" / "report.html").stat().st_size > 10_000


def test_acceptance_verdicts_are_shown_and_not_fatal(demo: DemoRun) -> None:
    acc = demo.result["acceptance"]
    assert acc["n_checks"] == len(acc["checks"]) >= 9
    step = next(s for s in demo.result["steps"] if s["title"] == "acceptance checks")
    assert step["exit_code"] == (1 if acc["n_failed"] else 0)
    assert "acceptance (held-out backtest)" in demo.output


def test_node_replayed_the_real_recording_via_serve_and_was_rolled_up(demo: DemoRun) -> None:
    node = demo.result["node"]
    assert node["finished"] is True and node["samples"] > 0
    model = json.loads((demo.out / "node" / "run" / "config.json").read_text())["model"]
    assert model["serve_url"] == demo.result["serve_url"]
    for day in node["days"]:
        for table in ("timeline", "guardrails"):
            part = demo.out / "rollup" / table / "symbol=BTCUSDT" / f"date={day}" / "part-0.parquet"
            assert part.is_file(), part
        assert (
            demo.out / "rollup" / "_manifests" / "symbol=BTCUSDT" / f"date={day}.json"
        ).is_file()


def test_serve_and_ray_stopped_and_nothing_is_left(demo: DemoRun) -> None:
    assert demo.result["processes_checked"] >= 10  # Ray's and Serve's processes were tracked
    stop = next(s for s in demo.result["steps"] if s["title"] == "stop serve")
    assert stop["exit_code"] is not None  # serve run exited by itself after Ctrl-C
    markers = (demo.ray_tmp, str(demo.out))
    left = [p.describe() for p in process_table().values()
            if p.state != "Z" and any(m in p.cmd for m in markers)]  # fmt: skip
    assert left == []
    assert not Path(demo.ray_tmp).exists()  # removed after a clean run


def test_final_table_has_the_numbers_and_every_output(demo: DemoRun) -> None:
    for row in ("test-period PnL (OUT-OF-SAMPLE, simulated)", "95% CI", "backtest PnL",
                "fills", "backtest guardrails", "node guardrails", "processes left", "none (",
                "report", "rollup", "commands"):  # fmt: skip
        assert row in demo.output, row
    for path in demo.result["outputs"].values():
        assert Path(path).exists(), path


def test_process_watch_names_an_orphaned_grandchild_and_a_marked_process() -> None:
    parent = subprocess.Popen(["bash", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    assert parent.stdout is not None
    grandchild = int(parent.stdout.readline())
    marked = subprocess.Popen(["sleep", "59.5"])  # no relation to the roots: found by its marker
    watch = ProcessWatch(marker="sleep 59.5")
    watch.scan([parent.pid])
    parent.kill()
    parent.wait()  # the grandchild is re-parented now: only the watch remembers it
    left = watch.alive()
    assert [p.pid for p in left] == sorted([grandchild, marked.pid])
    assert any("sleep 60" in p.describe() for p in left)
    watch.kill(left)
    marked.wait(10)
    deadline = time.monotonic() + 10
    while watch.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert watch.alive() == []


def test_demo_refuses_to_clear_a_directory_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep")
    with pytest.raises(DemoError, match="is not a demo's output"):
        run_demo(DemoConfig(out=tmp_path))
    assert (tmp_path / "precious.txt").read_text() == "keep"
