"""Replay <-> backtest parity: the same recording through ``node/run.py --replay`` and through
``nhmm backtest`` should give the same (state, action) sample for sample.

The loopback venue shifts every exchange timestamp by one constant that keeps the sample grid
(``summary.json``: ``venue.clock_offset_ms``), so a replay sample at ``ts`` is the backtest
sample at ``ts - offset``. Every sample of either run that does not agree is a
:class:`Difference` with a cause (:data:`CAUSES`). A feature divergence lasts: the causal
standardiser and the order-flow EWMA remember every sample, so the cause of a differing sample
with differing features is the cause of its *episode* (the run of diverging samples it belongs
to), decided at the episode's onset; a difference with equal features is carried by the forward
filter from an earlier LATENCY block or episode.

>>> import numpy as np
>>> f = np.zeros((4, 2))
>>> bt = Samples(np.array([10, 11, 12, 13]) * 10**9, np.array([0, 0, 1, 1]),
...              np.array(["buy", "buy", "flat", "flat"], dtype=object),
...              np.array(["ok"] * 4, dtype=object), f)
>>> live = Samples(np.array([11, 12, 13]) * 10**9, np.array([0, -1, 1]),
...                np.array(["buy", "flat", "flat"], dtype=object),
...                np.array(["ok", "error", "ok"], dtype=object), f[:3])
>>> rep = compare(live, bt, offset_ns=500)
>>> rep.samples, rep.agree, round(rep.fraction, 2), rep.by_cause()
(4, 2, 0.5, {'latency block': 1, 'warm-up': 1})
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import numpy as np

from training.errors import BadInputError

__all__ = ["CAUSES", "Difference", "ParityReport", "Samples", "compare", "parity", "write_parity"]

#: Every cause a difference can have, with what it means.
CAUSES: dict[str, str] = {
    "warm-up": "one run has no sample yet: its features were still warming up (it started "
    "later), or the runs started at different points so their warm-ups differ",
    "end of run": "one run has no sample any more: it stopped before the other (--duration, "
    "the replay's last second)",
    "missing sample": "one run has no ready sample here (a feature session restarted after a "
    "data gap, or the book was withdrawn)",
    "latency block": "no model answer in one run (LATENCY: Serve down, timeout)",
    "after latency block": "features agree, but the forward filter skipped a sample at an "
    "earlier LATENCY block and still carries it",
    "book resync": "the node's book lost diffs (sequence gap) or its market socket reconnected "
    "and was rebuilt from a snapshot; the features carry the divergence",
    "depth timestamp": "USD-M depth diffs: the Nautilus adapter stamps them with T (transaction "
    "time), the importer with E (event time); a diff between the two falls into a neighbouring "
    "sample",
    "model version": "the runs asked different model versions",
    "unexplained": "none of the above: a parity bug to investigate",
}

#: Features equal up to this (z units): both sides run the same engine on the same floats.
TOLERANCE = 1e-9
#: A sequence gap makes the book wrong before the node's guard notices (up to its check time
#: plus the cooldown, in exchange time): divergence this long before a resync is the resync's.
RESYNC_LEAD_NS = 60 * 10**9


@dataclass(frozen=True)
class Samples:
    """One run's timeline columns (``ts`` in backtest time, ascending)."""

    ts: np.ndarray
    state: np.ndarray
    action: np.ndarray
    status: np.ndarray
    features: np.ndarray

    @classmethod
    def from_table(cls, table: Any, offset_ns: int = 0) -> Samples:
        cols = table.select(["ts", "state", "action", "status", "features"]).to_pydict()
        feats = cols["features"]
        width = max((len(f) for f in feats), default=0)
        features = np.full((len(feats), width), np.nan)
        for i, f in enumerate(feats):
            features[i, : len(f)] = f
        return cls(
            np.asarray(cols["ts"], np.int64) - offset_ns,
            np.asarray(cols["state"], np.int64),
            np.asarray(cols["action"], object),
            np.asarray(cols["status"], object),
            features,
        )

    def row(self, i: int) -> dict[str, Any]:
        return {"state": int(self.state[i]), "action": str(self.action[i]),
                "status": str(self.status[i])}  # fmt: skip


@dataclass(frozen=True)
class Difference:
    """A sample where the runs disagree (``live`` / ``backtest`` ``None``: no sample there)."""

    ts: int  # backtest (recording) time, ns
    cause: str
    detail: str
    live: dict[str, Any] | None
    backtest: dict[str, Any] | None
    feature_diff: float | None = None


@dataclass(frozen=True)
class ParityReport:
    """Sample-by-sample agreement of a replay and a backtest of the same recording.

    ``samples``: every sample time either run has; ``pairs``: times both have; ``agree``:
    pairs with the same (state, action); ``fraction`` = ``agree / samples`` (the acceptance
    number, >= 0.99); ``differences``: every other sample with its cause.
    """

    offset_ns: int
    samples: int
    pairs: int
    agree: int
    differences: tuple[Difference, ...]
    episodes: tuple[dict[str, Any], ...] = ()
    runs: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.agree / self.samples if self.samples else 0.0

    def by_cause(self) -> dict[str, int]:
        return dict(sorted(Counter(d.cause for d in self.differences).items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "fraction": self.fraction,
            "samples": self.samples,
            "pairs": self.pairs,
            "agree": self.agree,
            "offset_ns": self.offset_ns,
            "by_cause": self.by_cause(),
            "causes": {c: CAUSES[c] for c in self.by_cause()},
            "episodes": list(self.episodes),
            "runs": self.runs,
            "differences": [asdict(d) for d in self.differences],
        }

    def markdown(self) -> str:
        lines = [
            "# Replay / backtest parity",
            "",
            f"- replay: `{self.runs.get('live', '?')}`",
            f"- backtest: `{self.runs.get('backtest', '?')}`",
            f"- same (state, action) on **{self.agree} of {self.samples} samples "
            f"({self.fraction:.2%})**; {self.pairs} samples in both runs",
            "",
            "| cause | samples | meaning |",
            "|---|---|---|",
            *(f"| {c} | {n} | {CAUSES[c]} |" for c, n in self.by_cause().items()),
            "",
            "## Differences",
            "",
            "| ts (UTC, recording) | cause | replay (state, action, status) | backtest | detail |",
            "|---|---|---|---|---|",
        ]
        for d in self.differences:
            lines.append(f"| {_utc(d.ts)} | {d.cause} | {_cell(d.live)} | {_cell(d.backtest)} | "
                         f"{d.detail} |")  # fmt: skip
        if not self.differences:
            lines.append("| - | - | - | - | none |")
        return "\n".join(lines) + "\n"


def _utc(ts: int) -> str:
    return str(np.datetime64(int(ts), "ns"))[:23]


def _cell(row: dict[str, Any] | None) -> str:
    return "-" if row is None else f"{row['state']}, {row['action']}, {row['status']}"


def _episodes(
    ts: np.ndarray, dz: np.ndarray, *, resync_ts: list[int], usdm: bool, versions_differ: bool,
    same_start: bool,
) -> tuple[np.ndarray, list[dict[str, Any]]]:  # fmt: skip
    """Per pair, the index of its divergence episode (-1: features agree), and the episodes."""
    episode = np.full(len(ts), -1)
    found: list[dict[str, Any]] = []
    first_resync = min(resync_ts) if resync_ts else None
    for i in np.flatnonzero(dz > TOLERANCE):
        if i == 0 or episode[i - 1] < 0:
            onset = int(ts[i])
            if versions_differ:
                cause = "model version"
            elif first_resync is not None and onset >= first_resync - RESYNC_LEAD_NS:
                cause = "book resync"
            elif i == 0 and not same_start:
                cause = "warm-up"
            elif usdm:
                cause = "depth timestamp"
            else:
                cause = "unexplained"
            found.append({"onset": onset, "cause": cause, "samples": 0})
        episode[i] = len(found) - 1
        found[-1]["samples"] += 1
    return episode, found


def compare(
    live: Samples,
    backtest: Samples,
    offset_ns: int,
    *,
    resync_ts: list[int] | tuple[int, ...] = (),
    usdm: bool = False,
    versions_differ: bool = False,
) -> ParityReport:
    """Compare ``live`` (timestamps already in backtest time) with ``backtest``.

    ``resync_ts``: backtest-time stamps of the replay's book resyncs and reconnects; ``usdm``:
    the replay ran on USD-M (its depth stamps differ: ``depth timestamp``).
    """
    resyncs = sorted(int(r) for r in resync_ts)
    li = {int(t): i for i, t in enumerate(live.ts)}
    bi = {int(t): i for i, t in enumerate(backtest.ts)}
    both = np.array(sorted(set(li) & set(bi)), np.int64)
    lp = np.array([li[t] for t in both], np.int64)
    bp = np.array([bi[t] for t in both], np.int64)
    width = min(live.features.shape[1], backtest.features.shape[1])
    if len(both) and live.features.shape[1] == backtest.features.shape[1]:
        dz = np.nanmax(np.abs(live.features[lp, :width] - backtest.features[bp, :width]), axis=1)
        dz = np.where(np.isnan(dz), np.inf, dz)
    else:  # different feature sets: every sample differs
        dz = np.full(len(both), np.inf)
    episode, episodes = _episodes(
        both, dz, resync_ts=resyncs, usdm=usdm, versions_differ=versions_differ,
        same_start=bool(len(live.ts) and len(backtest.ts) and live.ts[0] == backtest.ts[0]),
    )  # fmt: skip
    pair_at = {int(t): k for k, t in enumerate(both)}
    diffs: list[Difference] = []
    agree = 0
    last_block: int | None = None
    last_episode = -1
    for t in sorted(set(li) | set(bi)):
        k = pair_at.get(t)
        if k is None:
            diffs.append(_unpaired(t, live, backtest, li.get(t), bi.get(t), resyncs))
            continue
        i, j = int(lp[k]), int(bp[k])
        lrow, brow = live.row(i), backtest.row(j)
        if episode[k] >= 0:
            last_episode = int(episode[k])
        if lrow["status"] != "ok" or brow["status"] != "ok":
            last_block = t
        if lrow["state"] == brow["state"] and lrow["action"] == brow["action"]:
            agree += 1
            continue
        diff = float(dz[k]) if np.isfinite(dz[k]) else None
        if lrow["status"] != brow["status"]:
            side = "replay" if lrow["status"] != "ok" else "backtest"
            cause, detail = (
                "latency block",
                f"no model answer in the {side} ({lrow['status']} / {brow['status']})",
            )
        elif episode[k] >= 0:
            ep = episodes[int(episode[k])]
            cause, detail = ep["cause"], f"features differ by {dz[k]:.3g} since {_utc(ep['onset'])}"
        elif last_block is not None:
            cause, detail = "after latency block", f"filter carries the block at {_utc(last_block)}"
        elif last_episode >= 0:
            ep = episodes[last_episode]
            cause, detail = ep["cause"], f"filter carries the divergence since {_utc(ep['onset'])}"
        else:
            cause, detail = "unexplained", "same features, same history, different answer"
        diffs.append(Difference(t, cause, detail, lrow, brow, diff))
    samples = len(set(li) | set(bi))
    return ParityReport(offset_ns, samples, len(both), agree, tuple(diffs), tuple(episodes))


def _unpaired(
    t: int, live: Samples, backtest: Samples, i: int | None, j: int | None, resyncs: list[int]
) -> Difference:
    """A sample only one run has: before the other's first (warm-up), after its last (end of
    run), or in between (a gap in the other: a resync, or a feature session restart)."""
    other, name = (backtest, "backtest") if i is not None else (live, "replay")
    if not len(other.ts) or t < other.ts[0]:
        cause, detail = "warm-up", f"the {name} has no ready sample yet"
    elif t > other.ts[-1]:
        cause, detail = "end of run", f"the {name} has stopped"
    elif any(r - RESYNC_LEAD_NS <= t for r in resyncs):
        cause, detail = "book resync", f"no {name} sample (book rebuilt from a snapshot)"
    else:
        cause, detail = "missing sample", f"no ready {name} sample (feature session restart?)"
    return Difference(
        t, cause, detail,
        live.row(i) if i is not None else None,
        backtest.row(j) if j is not None else None,
    )  # fmt: skip


def parity(live_dir: str | Path, backtest_dir: str | Path) -> ParityReport:
    """Compare a ``--replay`` RUN_DIR with a ``nhmm backtest`` RUN_DIR of the same recording."""
    from node.run_dir import load_run

    live, bt = load_run(live_dir), load_run(backtest_dir)
    ls, bs = live.summary or {}, bt.summary or {}
    offset_ms = (ls.get("venue") or {}).get("clock_offset_ms")
    if offset_ms is None:
        raise BadInputError(
            f"{live_dir}: summary.json has no venue.clock_offset_ms: not a `node/run.py --replay` "
            "run (written by this version)",
            field="RUN_DIR",
        )
    if ls.get("symbol") != bs.get("symbol"):
        raise BadInputError(
            f"the runs trade different instruments: {ls.get('symbol')} (replay) vs "
            f"{bs.get('symbol')} (backtest)",
            field="BACKTEST_RUN_DIR",
        )
    offset = int(offset_ms) * 1_000_000
    stamps = [*ls.get("book_resync_ts", []), *ls.get("market_reconnect_ts", [])]
    report = compare(
        Samples.from_table(live.timeline, offset),
        Samples.from_table(bt.timeline),
        offset,
        resync_ts=[s - offset for s in stamps if s],
        usdm=(ls.get("live") or {}).get("account") == "usdm",
        versions_differ=ls.get("model_version") != bs.get("model_version"),
    )
    runs = {
        "live": str(Path(live_dir)),
        "backtest": str(Path(backtest_dir)),
        "symbol": ls.get("symbol"),
        "model_version": {"live": ls.get("model_version"), "backtest": bs.get("model_version")},
        "book_resyncs": ls.get("book_resyncs", 0),
        "market_reconnects": ls.get("market_reconnects", 0),
        "speed": (ls.get("live") or {}).get("speed"),
    }
    return ParityReport(report.offset_ns, report.samples, report.pairs, report.agree,
                        report.differences, report.episodes, runs)  # fmt: skip


def write_parity(report: ParityReport, out: str | Path) -> tuple[Path, Path]:
    """Write ``parity.json`` and ``parity.md`` into ``out`` (atomically); returns both paths."""
    from node.run_dir import write_json
    from training.io import atomic_write_text

    Path(out).mkdir(parents=True, exist_ok=True)
    js = write_json(out, "parity.json", report.to_dict())
    md = atomic_write_text(Path(out) / "parity.md", report.markdown())
    return js, md
