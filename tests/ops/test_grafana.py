"""The Grafana dashboards: the checked-in JSON is the generator's output, every file loads with
the SDK's own model (typed panels and Prometheus targets), the panels the issue asks for exist,
queries name only exported metrics, and the provisioning files agree with the dashboards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.cog.runtime import UnknownDataquery
from grafana_foundation_sdk.models.dashboard import Dashboard
from grafana_foundation_sdk.models.dashboard import Panel
from grafana_foundation_sdk.models.dashboard import RowPanel
from grafana_foundation_sdk.models.prometheus import Dataquery

from ops.grafana import dashboards as gd
from ops.prometheus import exported_series
from ops.prometheus import metric_names

GRAFANA = Path(gd.__file__).parent
REPO = GRAFANA.parents[1]
#: The issue's panels: (dashboard, title, panel type).
REQUIRED = [
    ("nhmm-node", "State histogram", "bargauge"),
    ("nhmm-node", "Regime transitions", "heatmap"),
    ("nhmm-node", "Blocks by reason", "timeseries"),
    ("nhmm-node", "Inference latency p95", "timeseries"),
    ("nhmm-node", "Drift KL per feature", "timeseries"),
    ("nhmm-node", "Drift score and adapting", "timeseries"),
    ("nhmm-node", "Time to funding", "timeseries"),
    ("nhmm-node", "Position", "timeseries"),
    ("nhmm-node", "PnL and drawdown", "timeseries"),
    ("nhmm-node", "Orders and fills", "timeseries"),
    ("nhmm-node", "Model versions", "table"),
    ("nhmm-serve", "Aliases", "table"),
]


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return gd.render()


def docs() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(gd.OUT_DIR.glob("*.json"))}


def test_checked_in_json_is_the_generator_output(rendered: dict[str, str]) -> None:
    on_disk = {p.name: p.read_text() for p in gd.OUT_DIR.glob("*.json")}
    assert on_disk == rendered, "run `make dashboards` and commit ops/grafana/dashboards/*.json"
    assert gd.main(["--check"]) == 0


def test_check_mode_reports_a_stale_file(tmp_path: Path, rendered: dict[str, str]) -> None:
    for name, text in rendered.items():
        (tmp_path / name).write_text(text)
    assert gd.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "nhmm-node.json").write_text(rendered["nhmm-node.json"].replace("PnL", "P&L"))
    assert gd.main(["--check", "--out", str(tmp_path)]) == 1
    assert gd.main(["--out", str(tmp_path)]) == 0  # regenerates
    assert (tmp_path / "nhmm-node.json").read_text() == rendered["nhmm-node.json"]


def test_every_dashboard_loads_with_the_sdk_model() -> None:
    register_default_plugins()
    assert set(docs()) == set(gd.DASHBOARDS)
    for name, doc in docs().items():
        model = Dashboard.from_json(doc)
        assert json.loads(json.dumps(model, cls=JSONEncoder)) == doc, name  # nothing lost
        assert model.uid == name and model.title
        panels = [p for p in model.panels if isinstance(p, Panel)]
        assert len(panels) + sum(isinstance(p, RowPanel) for p in model.panels) == len(
            doc["panels"]
        )
        ids = [p.id_val for p in model.panels]
        assert len(set(ids)) == len(ids) and 0 not in ids, name
        for panel in panels:
            assert panel.datasource.uid == gd.DATASOURCE_UID, panel.title
            assert panel.targets, panel.title
            for target in panel.targets:
                assert isinstance(target, Dataquery), (panel.title, type(target))
                assert not isinstance(target, UnknownDataquery)
                assert target.datasource.uid == gd.DATASOURCE_UID
            assert panel.options is None or not isinstance(panel.options, dict), panel.title


def test_the_issue_panels_exist() -> None:
    found = {(n, p["title"], p["type"]) for n, d in docs().items() for p in d["panels"]}
    missing = [r for r in REQUIRED if r not in found]
    assert not missing
    node = docs()["nhmm-node"]
    exprs = " ".join(e for _, e in gd.queries(node))
    for metric in ("ray_nhmm_model_info", "nhmm_node_model_info", "ray_nhmm_drift_kl",
                   "nhmm_node_adapting", "ray_nhmm_infer_latency_ms_bucket"):  # fmt: skip
        assert metric in exprs  # node and Serve side by side where the issue asks


def test_queries_name_only_exported_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    known = set(exported_series())
    for name, doc in docs().items():
        for title, expr in gd.queries(doc):
            names = metric_names(expr)
            assert names, (name, title)
            assert names <= known, (name, title, names - known)
    bad = gd.Q("rate(nhmm_node_nonexistent_total[5m])")
    monkeypatch.setitem(gd.DASHBOARDS, "nhmm-bad",
                        lambda: gd._with_rows(gd.dashboard.Dashboard("bad").uid("nhmm-bad"),
                                              [("r", [gd._series("x", "y", bad)])]))  # fmt: skip
    with pytest.raises(ValueError, match="nhmm_node_nonexistent_total"):
        gd.render()


def test_provisioning_and_compose_agree_with_the_dashboards() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert (source["uid"], source["type"]) == (gd.DATASOURCE_UID, "prometheus")
    prov = yaml.safe_load((GRAFANA / "provisioning/dashboards/nhmm.yml").read_text())
    (provider,) = prov["providers"]
    compose = yaml.safe_load((GRAFANA / "compose.yaml").read_text())
    grafana = compose["services"]["grafana"]
    assert f"./dashboards:{provider['options']['path']}:ro" in grafana["volumes"]
    assert "./provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    prom = compose["services"]["prometheus"]
    assert "../prometheus:/etc/prometheus:ro" in prom["volumes"]
    assert (GRAFANA / "../prometheus/prometheus.yml").resolve().is_file()
    assert (
        source["url"].endswith(":9090") and "--web.listen-address=127.0.0.1:9090" in prom["command"]
    )


def test_make_dashboards_regenerates() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "\ndashboards:" in makefile and "-m ops.grafana.dashboards" in makefile
