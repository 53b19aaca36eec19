"""The Prometheus config and alert rules under ``promtool`` (Debian's ``prometheus`` package,
installed by ``make system``): config and rules valid, every alert unit-tested firing and not
firing, and every rule naming only metrics the node or the Serve app exports."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from ops.prometheus import CONFIG
from ops.prometheus import RULES
from ops.prometheus import RULES_TEST
from ops.prometheus import exported_series
from ops.prometheus import metric_names


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``promtool``; a missing tool fails the test (``make system`` installs it)."""
    binary = shutil.which("promtool")
    assert binary, "promtool is required: `make system` (apt-get install prometheus)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def alerts() -> dict[str, dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def test_config_is_valid() -> None:
    res = promtool("check", "config", str(CONFIG))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 1 rule files found" in res.stdout + res.stderr


def test_rules_are_valid() -> None:
    res = promtool("check", "rules", str(RULES))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in res.stdout


def test_rule_unit_tests_pass() -> None:
    res = promtool("test", "rules", str(RULES_TEST))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases: dict[str, set[bool]] = {name: set() for name in alerts()}
    for test in yaml.safe_load(RULES_TEST.read_text())["tests"]:
        for case in test["alert_rule_test"]:
            assert case["alertname"] in cases, f"test of an unknown alert {case['alertname']}"
            cases[case["alertname"]].add(bool(case["exp_alerts"]))
    missing = {name: {True, False} - seen for name, seen in cases.items() if seen != {True, False}}
    assert not missing, f"alerts not tested both firing (True) and not firing (False): {missing}"


def test_the_unit_tests_can_fail(tmp_path: Path) -> None:
    """A wrong expectation (a threshold moved) makes ``promtool test rules`` fail."""
    shutil.copy(RULES, tmp_path / "rules.yml")
    moved = RULES_TEST.read_text().replace("a: drawdown 85 is", "a: drawdown 84 is")
    assert moved != RULES_TEST.read_text()
    (tmp_path / "rules_test.yml").write_text(moved)
    res = promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert res.returncode != 0
    assert "NhmmDrawdownNearLimit" in res.stdout + res.stderr


def test_rules_name_only_exported_metrics_and_have_a_runbook_entry() -> None:
    known = exported_series()
    runbook = (RULES.parent.parent / "runbook.md").read_text().lower()
    for name, rule in alerts().items():
        unknown = metric_names(rule["expr"]) - set(known)
        assert not unknown, f"{name} names metrics nothing exports: {unknown}"
        assert metric_names(rule["expr"]), name
        anchor = rule["annotations"]["runbook"].split("#")[1]
        assert f"### {anchor}" in runbook and name.lower() in runbook, name
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name


def test_scrape_config_targets_the_node_and_ray() -> None:
    jobs = {j["job_name"]: j for j in yaml.safe_load(CONFIG.read_text())["scrape_configs"]}
    assert jobs["nhmm-node"]["static_configs"][0]["targets"] == ["127.0.0.1:9464"]
    from node.metrics import DEFAULT_METRICS_PORT

    assert DEFAULT_METRICS_PORT == 9464
    assert jobs["ray"]["file_sd_configs"][0]["files"] == [
        "/tmp/ray/prom_metrics_service_discovery.json"
    ]
