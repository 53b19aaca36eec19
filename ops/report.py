"""``nhmm report RUN_DIR``: one self-contained HTML page, ``RUN_DIR/report.html``.

Price with a regime-coloured background, posterior stacked area, PnL and drawdown, the drift
score with adapting spans, guardrail counts, the empirical state-transition heatmap and the
state histogram, drawn with Matplotlib and embedded as base64 PNG, plus the summary numbers, the
per-day adaptation results and ``acceptance.json`` when present. The page fetches nothing: every
image is a ``data:`` URI and the style is inline.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import math
from collections.abc import Iterable
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from node.run_dir import ACCEPTANCE
from node.run_dir import ALLOWED
from node.run_dir import REPORT
from node.run_dir import TIMELINE
from node.run_dir import RunData
from node.run_dir import RunDirError
from node.run_dir import load_run
from node.run_dir import read_run_json
from training.io import atomic_write_text

__all__ = ["MAX_POINTS", "render_report", "transition_matrix"]

#: Timeline rows drawn per chart at most (longer runs are strided; the statistics use every row).
MAX_POINTS = 4000
NO_STATE_COLOUR = "#d9d9d9"
SUMMARY_KEYS = (
    "symbol",
    "days",
    "symbol_days",
    "model_version",
    "net_pnl",
    "fees",
    "sharpe",
    "max_drawdown",
    "trades",
    "turnover",
    "samples",
    "decisions",
    "entries",
    "orders_submitted",
    "events",
    "events_per_s",
    "wall_s",
    "trading_enabled",
)


def transition_matrix(states: np.ndarray, days: np.ndarray, k: int) -> np.ndarray:
    """Row-normalised counts of ``state[t] -> state[t+1]`` within each day (rows with no
    result, state < 0, are skipped; a row with no transitions stays zero).

    >>> transition_matrix(np.array([0, 0, 1, 1]), np.array(["d"] * 4), 2)
    array([[0.5, 0.5],
           [0. , 1. ]])
    """
    s = np.asarray(states)
    if len(s) < 2:
        return np.zeros((k, k))
    a, b = s[:-1], s[1:]
    keep = (a >= 0) & (b >= 0) & (np.asarray(days)[:-1] == np.asarray(days)[1:])
    counts = np.zeros((k, k))
    np.add.at(counts, (a[keep], b[keep]), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def _state_colours(k: int) -> list[str]:
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps["tab10"] if k <= 10 else colormaps["tab20"]
    return [to_hex(cmap(i % cmap.N)) for i in range(k)]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _posterior_matrix(column: pa.ChunkedArray, rows: np.ndarray, k: int) -> np.ndarray:
    """``rows x k`` posteriors; rows without a result (empty list) are zeros."""
    out = np.zeros((len(rows), k))
    for i, p in enumerate(column.take(pa.array(rows)).to_pylist()):
        if p:
            out[i, : len(p)] = np.nan_to_num(np.asarray(p, dtype=np.float64)[:k])
    return out


def _truth_rows(run: RunData, ts: np.ndarray) -> np.ndarray | None:
    """The ground-truth regime at ``ts`` (from ``truth.parquet``), or ``None`` without one."""
    if run.truth is None or run.truth.num_rows == 0:
        return None
    t = run.truth.column("ts").to_numpy()
    r = run.truth.column("regime").to_numpy()
    i = np.clip(np.searchsorted(t, ts, side="right") - 1, 0, len(t) - 1)
    return r[i].astype(np.int64)


def _drift_figure(run: RunData, time_axis: Any) -> Any:
    """Max per-feature KL of the backtest's drift monitor each minute (``adaptation.json``
    ``scores``) against its threshold, adapting minutes shaded; ``None`` without scores."""
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure

    ts: list[int] = []
    kl: list[float] = []
    adapting: list[bool] = []
    for entry in (run.adaptation or {}).get("days", []):
        sc = entry.get("scores") or {}
        ts += sc.get("ts", [])
        kl += [np.nan if v is None else float(v) for v in sc.get("max_kl", [])]
        adapting += [bool(v) for v in sc.get("adapting", [])]
    if not ts:
        return None
    x = mdates.date2num(
        np.asarray(ts, dtype="datetime64[ns]").astype("datetime64[us]").astype(object)
    )
    fig = Figure(figsize=(12, 2.4))
    ax = fig.subplots()
    ax.plot(x, kl, color="#9467bd", linewidth=0.9, label="max KL (live || training)")
    from serving.drift import DriftConfig

    ax.axhline(DriftConfig().kl_threshold, color="grey", linestyle="--", linewidth=0.7,
               label="KL threshold")  # fmt: skip
    ax.fill_between(x, 0, 1, where=np.asarray(adapting, dtype=bool), color="#ff7f0e", alpha=0.25,
                    transform=ax.get_xaxis_transform(), label="adapting")  # fmt: skip
    ax.legend(loc="upper left", fontsize=8)
    ax.set_ylabel("drift score")
    time_axis(ax)
    return fig


def _in_sample_banner(summary: dict[str, Any] | None) -> str:
    """A red banner when the backtest ran on days the model was trained on."""
    if not summary or not summary.get("in_sample"):
        return ""
    days = ", ".join(html.escape(str(d)) for d in summary.get("in_sample_days", []))
    return (
        '<p class="banner">in_sample: true: the model was trained on ' + days + "; every figure "
        "below is in-sample and says nothing about unseen data.</p>"
    )


def _figures(run: RunData) -> list[tuple[str, str]]:
    """``(title, base64 PNG)`` for every chart."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import dates as mdates
    from matplotlib.colors import BoundaryNorm
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    tl = run.timeline
    n = tl.num_rows
    ts = tl.column("ts").to_numpy()
    states = tl.column("state").to_numpy().astype(np.int64)
    lengths = tl.column("posterior").combine_chunks().value_lengths().fill_null(0).to_numpy()
    k = int(max(states.max(initial=-1) + 1, lengths.max(initial=0), 1))
    colours = _state_colours(k)
    rows = np.arange(0, n, max(1, math.ceil(n / MAX_POINTS)))
    x = mdates.date2num(
        np.asarray(ts[rows], dtype="datetime64[ns]").astype("datetime64[us]").astype(object)
    )
    locator = mdates.AutoDateLocator()
    fmt = mdates.ConciseDateFormatter(locator)
    figs: list[tuple[str, str]] = []

    def _time_axis(ax: Any) -> None:
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(fmt)
        ax.grid(alpha=0.3)

    # price over regimes
    fig = Figure(figsize=(12, 3.4))
    ax = fig.subplots()
    mid = tl.column("mid").to_numpy()[rows] if "mid" in tl.column_names else np.zeros(len(rows))
    if len(rows):
        lo, hi = float(np.nanmin(mid)), float(np.nanmax(mid))
        pad = (hi - lo) * 0.05 or max(abs(hi) * 1e-4, 1e-9)
        step = float(np.median(np.diff(x))) if len(x) > 1 else 1.0 / 1440
        edges = np.r_[x, x[-1] + step]
        cmap = ListedColormap([NO_STATE_COLOUR, *colours])
        norm = BoundaryNorm(np.arange(-1.5, k + 0.5), cmap.N)
        truth = _truth_rows(run, ts[rows])
        band = (hi - lo + 2 * pad) * 0.15 if truth is not None else 0.0
        ax.pcolormesh(edges, [lo - pad, hi + pad], states[rows][None, :], cmap=cmap, norm=norm,
                      alpha=0.35, shading="flat", rasterized=True)  # fmt: skip
        if truth is not None:  # the true regime, a band under the filtered one
            ax.pcolormesh(edges, [lo - pad - band, lo - pad], truth[None, :], cmap=cmap,
                          norm=norm, alpha=0.8, shading="flat", rasterized=True)  # fmt: skip
            ax.text(x[0], lo - pad - band / 2, " true regime", fontsize=8, va="center")
        ax.plot(x, mid, color="black", linewidth=0.8)
        ax.set_ylim(lo - pad - band, hi + pad)
        handles = [matplotlib.patches.Patch(color=c, alpha=0.5, label=f"state {i}")
                   for i, c in enumerate(colours)]  # fmt: skip
        ax.legend(handles=handles, loc="upper left", fontsize=8, ncol=k)
    ax.set_ylabel("mid")
    _time_axis(ax)
    figs.append(("Price and filtered regime", _png(fig)))

    # posterior stacked area
    fig = Figure(figsize=(12, 2.8))
    ax = fig.subplots()
    if len(rows):
        post = _posterior_matrix(tl.column("posterior"), rows, k)
        ax.stackplot(x, post.T, colors=colours, labels=[f"state {i}" for i in range(k)])
        ax.legend(loc="upper left", fontsize=8, ncol=k)
    ax.set_ylim(0, 1)
    ax.set_ylabel("posterior")
    _time_axis(ax)
    figs.append(("Filtered posterior", _png(fig)))

    # PnL and drawdown
    fig = Figure(figsize=(12, 4.0))
    ax1, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    pnl_all = run.pnl
    dd_all = np.maximum.accumulate(pnl_all) - pnl_all if n else pnl_all
    ax1.plot(x, pnl_all[rows], color="#1f77b4", linewidth=1.0)
    ax1.axhline(0.0, color="grey", linewidth=0.6)
    ax1.set_ylabel("PnL (quote, after fees)")
    ax2.fill_between(x, -dd_all[rows], 0.0, color="#d62728", alpha=0.5, linewidth=0)
    ax2.set_ylabel("drawdown")
    for ax in (ax1, ax2):
        _time_axis(ax)
    figs.append(("PnL and drawdown", _png(fig)))

    fig = _drift_figure(run, _time_axis)
    if fig is not None:
        figs.append(
            ("Drift monitor (the backtest's per-day monitor, scored each minute)", _png(fig))
        )

    # guardrail counts, transition heatmap, state histogram side by side
    fig = Figure(figsize=(12, 3.6))
    axg, axt, axh = fig.subplots(1, 3, width_ratios=[1.2, 1, 1])
    counts = {str(r): int(v) for r, v in (run.guardrails or {}).items()}
    names = sorted(counts, key=lambda r: (r == ALLOWED, r))
    bars = axg.barh(names, [counts[r] for r in names],
                    color=["#2ca02c" if r == ALLOWED else "#ff7f0e" for r in names])  # fmt: skip
    axg.bar_label(bars, fontsize=7, padding=2)
    axg.set_title("guardrail verdicts", fontsize=10)
    axg.tick_params(labelsize=8)
    trans = transition_matrix(states, run.days, k)
    im = axt.imshow(trans, cmap="viridis", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            axt.text(j, i, f"{trans[i, j]:.2f}", ha="center", va="center", fontsize=7,
                     color="white" if trans[i, j] < 0.6 else "black")  # fmt: skip
    axt.set_xticks(range(k))
    axt.set_yticks(range(k))
    axt.set_xlabel("to state")
    axt.set_ylabel("from state")
    axt.set_title("empirical transitions", fontsize=10)
    fig.colorbar(im, ax=axt, fraction=0.046)
    hist = np.bincount(states[states >= 0], minlength=k)[:k]
    axh.bar(range(k), hist, color=colours)
    axh.set_xticks(range(k))
    axh.set_xlabel("state")
    axh.set_title(f"state histogram ({int((states < 0).sum())} rows without a result)",
                  fontsize=10)  # fmt: skip
    fig.tight_layout()
    figs.append(("Guardrails, transitions, states", _png(fig)))
    return figs


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return ", ".join(map(str, v))
    return "" if v is None else str(v)


def _summary_html(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return "<p>summary.json missing</p>"
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(summary[k]))}</td></tr>"
        for k in SUMMARY_KEYS
        if k in summary
    )
    return f'<table class="kv">{rows}</table>'


def _grid(head: Sequence[str], rows: Iterable[tuple[str, Sequence[Any]]]) -> str:
    """A ``grid`` table: the ``head`` cells, then each ``(row class or "", cells)``."""
    ths = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = [
        (f'<tr class="{cls}">' if cls else "<tr>")
        + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in cells)
        + "</tr>"
        for cls, cells in rows
    ]
    return f'<table class="grid"><tr>{ths}</tr>{"".join(body)}</table>'


def _adaptation_html(adaptation: dict[str, Any] | None) -> str:
    if adaptation is None:
        return "<p>adaptation.json missing</p>"
    head = ("day", "drift samples", "max KL", "drifted", "adapting", "partial_fit",
            "held-out ll before → after")  # fmt: skip
    rows = []
    for e in adaptation.get("days", []):
        d = e.get("drift") or {}
        pf = e.get("partial_fit") or {}
        fit = pf.get("error") or f"{'accepted' if pf.get('accepted') else 'rejected'}"
        fit += f" ({pf.get('reason')}, n={pf.get('n_samples')})" if not pf.get("error") else ""
        ll = f"{_fmt(pf.get('heldout_ll_before'))} → {_fmt(pf.get('heldout_ll_after'))}"
        cells = [e.get("day"), d.get("n_samples"), d.get("max_kl"), d.get("drifted"),
                 d.get("adapting"), fit, ll]  # fmt: skip
        rows.append(("", cells))
    return _grid(head, rows)


def _acceptance_html(path: Path) -> str:
    doc = read_run_json(path)
    if doc is None:
        return "<p>No acceptance.json: run <code>nhmm acceptance RUN_DIR</code> first.</p>"
    rows = []
    for c in doc.get("checks", []):
        ok = bool(c.get("passed"))
        cells = [c.get("day"), c.get("name"), "PASS" if ok else "FAIL", c.get("value"),
                 c.get("threshold"), c.get("detail")]  # fmt: skip
        rows.append(("pass" if ok else "fail", cells))
    verdict = "ALL PASS" if doc.get("passed") else f"{doc.get('n_failed', '?')} FAILED"
    cls = "pass" if doc.get("passed") else "fail"
    head = ("day", "check", "result", "value", "threshold", "detail")
    return f'<p class="{cls}"><b>{html.escape(verdict)}</b></p>' + _grid(head, rows)


_CSS = """
body { font-family: sans-serif; margin: 16px 24px; color: #222; background: #fff; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 24px; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
table.kv th { background: #f3f3f3; }
tr.pass td:nth-child(3), p.pass { color: #1a7f37; }
tr.fail td:nth-child(3), p.fail { color: #c62828; }
tr.fail { background: #fdecea; }
img { max-width: 100%; display: block; }
p.banner { background: #c62828; color: #fff; font-weight: bold; padding: 8px 12px; }
"""


def render_report(run_dir: str | Path) -> Path:
    """Write ``RUN_DIR/report.html`` (atomically) and return its path."""
    run = load_run(run_dir)
    if run.timeline.num_rows == 0:
        raise RunDirError(f"{run.root / TIMELINE}: no rows to plot")
    figs = _figures(run)
    title = f"nautilus-hmm backtest: {run.root.name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _in_sample_banner(run.summary),
        f"<p>generated {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')} "
        f"from {html.escape(str(run.root.resolve()))}</p>",
        "<h2>Summary</h2>",
        _summary_html(run.summary),
        "<h2>Acceptance</h2>",
        _acceptance_html(run.root / ACCEPTANCE),
        "<h2>Adaptation (drift monitor and partial_fit per day)</h2>",
        _adaptation_html(run.adaptation),
    ]
    for name, b64 in figs:
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(f'<img alt="{html.escape(name)}" src="data:image/png;base64,{b64}">')
    parts.append("</body></html>")
    return atomic_write_text(run.root / REPORT, "\n".join(parts))
