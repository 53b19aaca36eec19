"""Per symbol-day acceptance checks on a backtest RUN_DIR (``nhmm acceptance``).

:mod:`~ops.acceptance.config` (thresholds, the result of one check), :mod:`~ops.acceptance.stats`
(state entropy, block-bootstrap CI), :mod:`~ops.acceptance.checks` (the checks). The RUN_DIR is
read through :func:`node.run_dir.load_run`. This package's import stays light (the ``nhmm``
command imports it for its defaults): :func:`run_acceptance` loads the checks when called.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from ops.acceptance.config import ALL_DAYS
from ops.acceptance.config import AcceptanceConfig
from ops.acceptance.config import Check

__all__ = ["ALL_DAYS", "AcceptanceConfig", "Check", "print_checks", "run_acceptance"]


def _json_number(v: float | None) -> float | None:
    return v if v is None or math.isfinite(v) else None


def run_acceptance(
    run_dir: str | Path, cfg: AcceptanceConfig | None = None
) -> tuple[bool, list[Check]]:
    """Load RUN_DIR, run every check, write ``acceptance.json`` atomically; ``(all passed, checks)``.

    An unreadable RUN_DIR raises :class:`node.run_dir.RunDirError` and writes nothing.
    """
    from node import run_dir as rd
    from ops.acceptance.checks import run_checks
    from training.io import atomic_write_text

    cfg = cfg or AcceptanceConfig()
    run = rd.load_run(run_dir)
    checks = run_checks(run, cfg)
    passed = all(c.passed for c in checks)
    summary = run.summary or {}
    doc = {
        "passed": passed,
        "in_sample": bool(summary.get("in_sample", False)),
        "in_sample_days": summary.get("in_sample_days", []),
        "n_checks": len(checks),
        "n_failed": sum(not c.passed for c in checks),
        "config": dataclasses.asdict(cfg),
        "checks": [
            {
                **dataclasses.asdict(c),
                "value": _json_number(c.value),
                "threshold": _json_number(c.threshold),
            }
            for c in checks
        ],
    }
    atomic_write_text(run.root / rd.ACCEPTANCE, json.dumps(doc, indent=2, allow_nan=False))
    return passed, checks


def print_checks(checks: list[Check], run_dir: Path) -> None:
    """The checks as a table on the terminal, then ``passed/total``."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"acceptance: {run_dir}")
    for col in ("day", "check", "result", "value", "threshold", "detail"):
        table.add_column(col, overflow="fold")
    for c in checks:
        table.add_row(
            c.day,
            c.name,
            "[green]PASS[/green]" if c.passed else f"[bold red]{c.verdict.upper()}[/bold red]",
            "" if c.value is None else f"{c.value:.6g}",
            "" if c.threshold is None else f"{c.threshold:.6g}",
            c.detail,
        )
    console = Console(width=max(Console().width, 140))
    console.print(table)
    failed = sum(not c.passed for c in checks)
    console.print(f"{len(checks) - failed}/{len(checks)} checks passed")
