"""``nhmm report``: one self-contained HTML page (no external src/href), rendered by headless
Chromium to a screenshot that is not blank; transition matrix; bad input."""

from __future__ import annotations

import base64
import copy
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from ops.acceptance import run_acceptance
from ops.report import _acceptance_html
from ops.report import render_report
from ops.report import transition_matrix
from tests.run_dir_setup import make_spec
from tests.run_dir_setup import write_run
from training.cli import main

URL_ATTRS = {"src", "href", "srcset", "action", "poster", "data", "formaction"}


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.imgs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in URL_ATTRS:
                self.refs.append((tag, name, value or ""))
        if tag == "img":
            self.imgs.append(dict(attrs).get("src") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Refs:
    p = _Refs()
    p.feed(html)
    return p


def external_refs(html: str) -> list[tuple[str, str, str]]:
    """Every src/href-like attribute that is not an inline ``data:`` URI or a fragment, plus
    any ``url(...)`` / ``@import`` in inline CSS."""
    bad = [r for r in parse(html).refs if not r[2].startswith(("data:", "#"))]
    for marker in ("url(", "@import"):
        if marker in html:
            bad.append(("css", marker, ""))
    return bad


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium not found: install Debian's `chromium` (apt-get install -y chromium)"
    return exe


def screenshot(page: Path, png: Path) -> np.ndarray:
    """Headless Chromium screenshot of ``page`` at 1280x2000 as an RGB array."""
    subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={png.parent / 'chromium-profile'}", f"--screenshot={png}",
         "--window-size=1280,2000", page.resolve().as_uri()],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    with Image.open(png) as img:
        return np.asarray(img.convert("RGB"))


def looks_rendered(rgb: np.ndarray) -> tuple[bool, str]:
    """Not blank: pixel variance, many distinct colours, and saturated (chart) pixels."""
    flat = rgb.reshape(-1, 3).astype(np.int64)
    std = float(flat.std())
    colours = len(np.unique(flat[:, 0] << 16 | flat[:, 1] << 8 | flat[:, 2]))
    saturated = float(((flat.max(axis=1) - flat.min(axis=1)) > 60).mean())
    ok = std > 10.0 and colours >= 64 and saturated > 0.01
    return ok, f"std {std:.1f}, {colours} colours, {saturated:.1%} saturated"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hand-built RUN_DIR with acceptance.json, rendered once for the tests below."""
    run = write_run(make_spec(), tmp_path_factory.mktemp("report") / "run")
    run_acceptance(run)
    return render_report(run)


def test_report_is_self_contained_with_summary_charts_and_acceptance(rendered: Path) -> None:
    run = rendered.parent
    assert rendered == run / "report.html"
    html = rendered.read_text()
    assert external_refs(html) == []
    page = parse(html)
    assert len(page.imgs) == 5
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    text = " ".join(page.text)
    for title in ("Price and filtered regime", "Filtered posterior", "PnL and drawdown",
                  "Guardrails, transitions, states", "Summary", "Acceptance", "ALL PASS",
                  "Drift monitor", "Adaptation"):  # fmt: skip
        assert title in text, title
    assert "in_sample: true" not in text  # an out-of-sample run has no banner
    summary = json.loads((run / "summary.json").read_text())
    assert f"{summary['net_pnl']:.6g}" in text and "v0001-test" in text
    assert text.count("accepted (improved, n=600)") == 2 and "-4.3 → -4.2" in text
    n_checks = len(json.loads((run / "acceptance.json").read_text())["checks"])
    assert html.count('<tr class="pass">') == n_checks == 19


def test_in_sample_banner_truth_band_and_drift_scores(
    good_spec: dict[str, Any], tmp_path: Path
) -> None:
    """Issue 11: an in-sample run says so at the top; a synthetic run's true regime is a band
    under the filtered one (the price chart changes); the drift panel draws the monitor's
    per-minute KL (not the flat served ``drift`` column)."""
    plain = render_report(write_run(copy.deepcopy(good_spec), tmp_path / "plain"))
    good_spec["summary"].update(in_sample=True, in_sample_days=["BTCUSDT.BINANCE/2024-01-01"])
    good_spec["truth"] = [(i // 200) % 3 for i in range(len(good_spec["timeline"]["ts"]))]
    marked = render_report(write_run(good_spec, tmp_path / "marked"))
    page, base = parse(marked.read_text()), parse(plain.read_text())
    text = " ".join(page.text)
    assert "in_sample: true" in text and "BTCUSDT.BINANCE/2024-01-01" in text
    assert text.index("in_sample: true") < text.index("Summary")
    assert page.imgs[0] != base.imgs[0]  # the true-regime band
    assert "Drift monitor" in text and len(page.imgs) == 5
    good_spec["adaptation"]["days"] = [
        {k: v for k, v in d.items() if k != "scores"} for d in good_spec["adaptation"]["days"]
    ]
    no_scores = render_report(write_run(good_spec, tmp_path / "noscores"))
    assert len(parse(no_scores.read_text()).imgs) == 4  # no per-minute scores: no drift panel


def test_acceptance_section_says_when_missing_and_flags_failures(
    good_spec: dict[str, Any], tmp_path: Path
) -> None:
    assert "No acceptance.json" in _acceptance_html(tmp_path / "acceptance.json")
    good_spec["guardrails"]["POS"] += 1
    run = write_run(good_spec, tmp_path / "b")
    run_acceptance(run)
    html = _acceptance_html(run / "acceptance.json")
    assert "1 FAILED" in html and html.count('<tr class="fail">') == 1
    assert html.count('<tr class="pass">') == 18


def test_external_ref_checker_catches_remote_resources() -> None:
    assert external_refs('<img src="data:image/png;base64,AAAA"><a href="#x">x</a>') == []
    assert external_refs('<script src="https://cdn.example/x.js"></script>')
    assert external_refs('<link rel="stylesheet" href="style.css">')
    assert external_refs("<style>body { background: url(http://x/y.png) }</style>")


def test_headless_chromium_screenshot_is_not_blank(rendered: Path, tmp_path: Path) -> None:
    rgb = screenshot(rendered, tmp_path / "report.png")
    assert rgb.shape == (2000, 1280, 3)
    ok, detail = looks_rendered(rgb)
    assert ok, detail
    # the same check on a blank page says blank
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    ok, detail = looks_rendered(screenshot(blank, tmp_path / "blank.png"))
    assert not ok, detail


def test_cli_report_on_a_real_backtest_run(backtest_run: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", str(backtest_run)])
    assert result.exit_code == 0, result.output
    page = backtest_run / "report.html"
    assert f"wrote {page}" in result.output
    html = page.read_text()
    assert external_refs(html) == [] and len(parse(html).imgs) == 5
    ok, detail = looks_rendered(screenshot(page, tmp_path / "real.png"))
    assert ok, detail


def test_transition_matrix_counts_within_days_only() -> None:
    states = np.array([0, 1, 1, -1, 1, 2, 2, 0])
    days = np.array(["a"] * 6 + ["b"] * 2)
    m = transition_matrix(states, days, 3)
    # a: 0->1, 1->1, 1->2 (the -1 row breaks 1->-1->1); a->b 2->2 is across days; b: 2->0
    np.testing.assert_allclose(m, [[0, 1, 0], [0, 0.5, 0.5], [1, 0, 0]])
    assert transition_matrix(np.array([1]), np.array(["a"]), 2).sum() == 0.0


def test_bad_run_dir_writes_nothing(good_spec: dict[str, Any], tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "timeline.parquet: missing" in result.output
    run = write_run(good_spec, tmp_path / "empty")
    table = pq.read_table(run / "timeline.parquet")
    pq.write_table(table.slice(0, 0), run / "timeline.parquet")
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 2 and "no rows to plot" in result.output
    assert not (run / "report.html").exists()
    pq.write_table(pa.table({"ts": [1]}), run / "timeline.parquet")
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 2 and "missing column(s)" in result.output
