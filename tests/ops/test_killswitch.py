"""``nhmm killswitch status|engage|reset``: acts on the same files the strategy's guardrails read;
reset needs --yes or a confirmation, clears the crash marker, and --clear-peak the DD peak."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from click.testing import Result

from node.guardrails import GuardInput
from node.guardrails import GuardLimits
from node.guardrails import Guardrails
from node.killswitch import KillSwitch
from node.killswitch import paths
from ops.killswitch import kill_switch_state
from training.cli import main


def nhmm(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, ["killswitch", *args], input=stdin)


def guard_input(equity: float) -> GuardInput:
    return GuardInput(ts_ns=10**18, side="buy", quantity=0.001, position=0.0, confidence=0.9,
                      spread_bp=0.5, realised_vol_bp=1.0, latency_ms=1.0, adapting=False,
                      equity=equity)  # fmt: skip


def test_status_of_a_fresh_state_dir(tmp_path: Path) -> None:
    result = nhmm("status", "--state-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "no kill switch file" in result.output and "not tripped" in result.output
    result = nhmm("status", "--state-dir", str(tmp_path), "--json")
    state = json.loads(result.output)
    assert state["tripped"] is False and state["peak"] is None and state["exists"] is False


def test_engage_blocks_the_guardrails_until_reset(tmp_path: Path) -> None:
    kill_path, _ = paths(tmp_path)
    result = nhmm("engage", "--state-dir", str(tmp_path), "--reason", "OPS-TEST")
    assert result.exit_code == 0, result.output
    assert "ENGAGED (OPS-TEST)" in result.output
    guards = Guardrails(GuardLimits(), kill_path)
    verdict = guards.check(guard_input(1000.0))
    assert (verdict.allowed, verdict.reason, verdict.detail) == (False, "KILL", "OPS-TEST")
    result = nhmm("status", "--state-dir", str(tmp_path))
    assert "TRIPPED  reason=OPS-TEST" in result.output

    # no --yes: a prompt; "n" aborts and leaves it tripped
    result = nhmm("reset", "--state-dir", str(tmp_path), stdin="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    assert KillSwitch(kill_path).tripped
    result = nhmm("reset", "--state-dir", str(tmp_path), stdin="y\n")
    assert result.exit_code == 0, result.output
    assert "cleared: kill switch (reason OPS-TEST" in result.output
    assert not KillSwitch(kill_path).tripped
    assert Guardrails(GuardLimits(), kill_path).check(guard_input(1000.0)).allowed
    result = nhmm("reset", "--state-dir", str(tmp_path), "--yes")
    assert result.exit_code == 0 and "nothing to clear" in result.output


def test_reset_after_a_crash_clears_the_marker_so_the_next_start_runs(tmp_path: Path) -> None:
    kill_path, _ = paths(tmp_path)
    KillSwitch(kill_path).start()  # a node starts, then dies without stop()
    restarted = KillSwitch(kill_path)
    restarted.start()
    assert restarted.tripped and restarted.reason == "CRASH"
    result = nhmm("reset", "--state-dir", str(tmp_path), "--yes")
    assert result.exit_code == 0, result.output
    assert "cleared: kill switch (reason CRASH" in result.output
    assert "cleared: running marker" in result.output
    again = KillSwitch(kill_path)
    again.start()
    assert not again.tripped
    again.stop()
    assert kill_switch_state(tmp_path)["running"] is False


def test_drawdown_peak_survives_reset_unless_cleared(tmp_path: Path) -> None:
    kill_path, peak_path = paths(tmp_path)
    limits = GuardLimits(max_drawdown=10.0)
    guards = Guardrails(limits, kill_path)
    guards.observe(1000.0)
    guards.observe(985.0)
    assert KillSwitch(kill_path).reason == "DD"
    assert "drawdown peak: 1000" in nhmm("status", "--state-dir", str(tmp_path)).output

    assert nhmm("reset", "--state-dir", str(tmp_path), "--yes").exit_code == 0
    Guardrails(limits, kill_path).observe(985.0)  # the stored peak trips DD again at once
    assert KillSwitch(kill_path).reason == "DD"

    result = nhmm("reset", "--state-dir", str(tmp_path), "--yes", "--clear-peak")
    assert result.exit_code == 0, result.output
    assert "cleared: drawdown peak 1000" in result.output
    assert not peak_path.exists()
    fresh = Guardrails(limits, kill_path)
    fresh.observe(985.0)
    assert not KillSwitch(kill_path).tripped
    assert fresh.check(guard_input(985.0)).allowed


def test_bad_state(tmp_path: Path) -> None:
    result = nhmm("status", "--state-dir", str(tmp_path / "nope"))
    assert result.exit_code == 2 and "does not exist" in result.output
    kill_path, _ = paths(tmp_path)
    kill_path.write_text('{"tripped": true,\n "reason": }')
    result = nhmm("reset", "--state-dir", str(tmp_path), "--yes")
    assert result.exit_code == 1
    assert "kill_switch.json:2: not valid JSON" in result.output
    assert kill_path.read_text() == '{"tripped": true,\n "reason": }'
