"""The table ``make demo`` ends with: the numbers (each labelled with what kind of number it
is) and where every output is, from the ``OUT/demo.json`` figures.

>>> import io
>>> from rich.console import Console
>>> doc = {"sweep": {"test": {"period": "days 2024-01-04", "net_pnl_per_day": 1.5,
...        "net_pnl_per_day_ci": [-5.4, 1.6], "ci_level": 0.95, "round_trips_per_day": 5.0}},
...        "backtest": {"net_pnl": -0.25, "fees": 0.3, "trades": 12.0, "in_sample": False},
...        "backtest_guardrails": {"OK": 3, "CONF": 7, "DD": 0}, "held_out_day": "2024-01-04",
...        "acceptance": {"n_checks": 10, "n_failed": 1, "checks": [
...            {"name": "pnl_expectation", "day": "2024-01-04", "passed": False}]},
...        "node": {"samples": 90, "entries": 2, "fills_seen": 1}, "node_guardrails": {},
...        "outputs": {"report": "demo_run/backtest/report.html"}, "processes_checked": 40,
...        "wall_s": 421.0}
>>> console = Console(width=160, record=True, file=io.StringIO())
>>> console.print(final_table(doc))
>>> text = console.export_text()
>>> "[-5.4, 1.6]" in text and "out-of-sample" in text and "CONF 7" in text
True
>>> "9/10 passed; failed: pnl_expectation 2024-01-04" in text
True
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

__all__ = ["final_table", "guardrail_text"]


def guardrail_text(counts: dict[str, Any]) -> str:
    """Non-zero block counts, largest first, then the entries (``OK``).

    >>> guardrail_text({"OK": 3, "CONF": 7, "DD": 0, "VWAP": 9})
    'VWAP 9, CONF 7; entries (OK) 3'
    """
    blocks = sorted(
        ((k, int(v)) for k, v in counts.items() if k != "OK" and v), key=lambda kv: -kv[1]
    )
    text = ", ".join(f"{k} {v}" for k, v in blocks) or "no blocks"
    return f"{text}; entries (OK) {int(counts.get('OK', 0))}" if counts else "-"


def _money(x: Any) -> str:
    return "-" if x is None else f"{float(x):+.4g} USDT"


def _acceptance(doc: dict[str, Any]) -> str:
    if not doc:
        return "-"
    failed = [f"{c['name']} {c['day']}" for c in doc.get("checks", []) if not c.get("passed")]
    n = int(doc.get("n_checks", 0))
    text = f"{n - len(failed)}/{n} passed"
    return f"{text}; failed: {', '.join(failed)}" if failed else text


def final_table(doc: dict[str, Any]) -> Table:
    """What the demo found and where it put it."""
    table = Table(title=f"make demo: done in {doc.get('wall_s', 0):.0f} s", show_lines=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    test = (doc.get("sweep") or {}).get("test") or {}
    if test:
        lo, hi = test.get("net_pnl_per_day_ci", (None, None))
        level = float(test.get("ci_level", 0.95))
        table.add_row(
            "test-period PnL (OUT-OF-SAMPLE, simulated)",
            f"{_money(test.get('net_pnl_per_day'))}/day, {level:.0%} CI [{lo:.4g}, {hi:.4g}] "
            f"on {test.get('period')}; {test.get('fills', 0):g} fills, "
            f"{test.get('round_trips_per_day', 0):g} round trips/day (the sweep's winner refit "
            "on the search days)",
        )
    bt = doc.get("backtest") or {}
    sample = "IN-SAMPLE" if bt.get("in_sample") else "out-of-sample"
    table.add_row(
        f"backtest PnL (Nautilus via Serve, {sample})",
        f"{_money(bt.get('net_pnl'))} after {float(bt.get('fees') or 0):.4g} USDT fees on "
        f"{doc.get('held_out_day')}; fills {int(bt.get('trades') or 0)}",
    )
    table.add_row("backtest guardrails", guardrail_text(doc.get("backtest_guardrails") or {}))
    table.add_row("acceptance (held-out backtest)", _acceptance(doc.get("acceptance") or {}))
    node = doc.get("node") or {}
    table.add_row(
        "replayed live node (real recording, via Serve)",
        f"{node.get('samples', 0)} samples, {node.get('entries', 0)} entries, "
        f"{node.get('fills_seen', 0)} fills, net PnL {_money(node.get('net_pnl'))}",
    )
    table.add_row("node guardrails", guardrail_text(doc.get("node_guardrails") or {}))
    table.add_row("processes left", f"none ({doc.get('processes_checked', 0)} checked)")
    for name, path in (doc.get("outputs") or {}).items():
        table.add_row(f"  {name}", str(path))
    return table
