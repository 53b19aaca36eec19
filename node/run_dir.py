"""The RUN_DIR contract: what ``nhmm backtest`` writes and ``nhmm acceptance`` / ``report`` read.

One owner for the file names, the Arrow schemas of the tables, the reason codes a run counts, and
the reader :func:`load_run`. :mod:`node.backtest` writes through :func:`write_rows`,
:func:`write_table`, :func:`write_report` and :func:`write_json`; :mod:`ops` reads through
:func:`load_run` and :func:`read_run_json` (ops -> node, never back).

- ``fills/positions/account.parquet``: Nautilus reports, every column a string;
- ``timeline.parquet`` (:data:`TIMELINE_SCHEMA`): one row per sample; ``equity`` leaves out the
  starting base inventory's price drift (what DD watches), ``pnl`` is ``equity`` minus the
  starting quote balance, its last row net of closing a position still open (at the touch,
  taker fee: ``close_cost`` in the summary); ``state`` -1 / empty ``posterior`` when inference
  gave no result;
- ``entries.parquet`` / ``blocks.parquet``: feature vectors at entries and at every block;
- ``exits.parquet``: every exit quote (ts, reason, side, price, quantity, requote);
- ``shadow.parquet``: every shadow decision (with ``--shadow``);
- ``truth.parquet`` (:data:`TRUTH_SCHEMA`, optional): the ground-truth regime at each timeline
  sample, where the catalog has labels (synthetic markets);
- ``guardrails.json``: verdict counts by reason code (:data:`REASON_CODES` and ``OK``);
- ``config.json``: strategy config, venue options, instrument facts, model refs;
- ``adaptation.json``: per day, the drift monitor's report, its scores per minute and a
  ``partial_fit`` of the day;
- ``summary.json``: net PnL after fees, Sharpe, drawdown, trades, round trips with their gross
  edge and costs, ``in_sample`` (the model was fitted on a backtested day), turnover, speed;
- ``kill_switch.json`` / ``kill_switch.peak.json``: the strategy's state (:mod:`node.killswitch`);
- ``acceptance.json`` and ``report.html``: written later by ``nhmm acceptance`` / ``report``.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import pyarrow as pa

from node._json import read_json_object
from training.errors import BadInputError
from training.io import atomic_path
from training.io import atomic_write_json
from training.simulation.rules import ALLOWED
from training.simulation.rules import GUARD_REASONS
from training.simulation.rules import NO_TRADE
from training.simulation.rules import REASON_CODES

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ACCEPTANCE",
    "ACCOUNT",
    "ADAPTATION",
    "ALLOWED",
    "BLOCKS",
    "BLOCK_SCHEMA",
    "CONFIG",
    "ENTRIES",
    "ENTRY_SCHEMA",
    "EXITS",
    "EXIT_SCHEMA",
    "FILLS",
    "GUARDRAILS",
    "GUARD_REASONS",
    "NON_BLOCK_VERDICTS",
    "NO_TRADE",
    "POSITIONS",
    "REASON_CODES",
    "REPORT",
    "REQUIRED_COLUMNS",
    "SAMPLE_SCHEMA",
    "SHADOW",
    "SHADOW_SCHEMA",
    "SUMMARY",
    "TIMELINE",
    "TIMELINE_SCHEMA",
    "TRUTH",
    "TRUTH_SCHEMA",
    "RunData",
    "RunDirError",
    "instrument_facts",
    "load_run",
    "read_run_json",
    "utc_day",
    "write_json",
    "write_report",
    "write_rows",
    "write_table",
]

# -- file names

TIMELINE = "timeline.parquet"
ENTRIES = "entries.parquet"
BLOCKS = "blocks.parquet"
EXITS = "exits.parquet"
SHADOW = "shadow.parquet"
TRUTH = "truth.parquet"
FILLS = "fills.parquet"
POSITIONS = "positions.parquet"
ACCOUNT = "account.parquet"
GUARDRAILS = "guardrails.json"
CONFIG = "config.json"
ADAPTATION = "adaptation.json"
SUMMARY = "summary.json"
ACCEPTANCE = "acceptance.json"
REPORT = "report.html"

# -- reason codes: GUARD_REASONS (KILL LATENCY DRIFT CONF SPREAD DD POS COOLDOWN, the order the
# rules check them), REASON_CODES (those and the execution skips VWAP, PRICE), ALLOWED ("OK"),
# NO_TRADE ("FLAT"): defined by the decision rules (training.simulation.rules), part of this
# contract.

#: Timeline verdicts that are not blocks.
NON_BLOCK_VERDICTS: tuple[str, ...] = (ALLOWED, NO_TRADE)

# -- schemas

_TYPES = {
    "int64": pa.int64(),
    "int32": pa.int32(),
    "float64": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "vector": pa.list_(pa.float64()),
}


def _schema(columns: str) -> pa.Schema:
    """A schema from ``"name:type ..."`` (types: ``int64 int32 float64 string bool vector``).

    >>> _schema("ts:int64 features:vector").types
    [DataType(int64), ListType(list<item: double>)]
    """
    return pa.schema([(n, _TYPES[t]) for n, t in (c.split(":") for c in columns.split())])


#: One row of ``PolicyHMMStrategy.timeline`` (a sample): the timeline without ``pnl``.
SAMPLE_SCHEMA = _schema(
    "ts:int64 day:string state:int32 posterior:vector confidence:float64 action:string "
    "score:float64 verdict:string status:string latency_ms:float64 answer_ms:float64 loglik:float64 drift:float64 "
    "adapting:bool features:vector equity:float64 position:float64 mid:float64"
)
TIMELINE_SCHEMA = SAMPLE_SCHEMA.append(pa.field("pnl", pa.float64()))
ENTRY_SCHEMA = _schema(
    "ts:int64 side:string price:float64 quantity:float64 submitted:bool features:vector"
)
BLOCK_SCHEMA = _schema("ts:int64 reason:string side:string features:vector")
EXIT_SCHEMA = _schema(
    "ts:int64 reason:string side:string price:float64 quantity:float64 requote:bool aggressive:bool"
)
#: One row per shadow version per sample.
SHADOW_SCHEMA = _schema(
    "ts:int64 day:string version:string state:int32 confidence:float64 action:string "
    "status:string agrees_with_live:bool"
)
#: Ground-truth regime per timeline sample (synthetic markets only).
TRUTH_SCHEMA = _schema("ts:int64 regime:int32")
_ROW_SCHEMAS = {ENTRIES: ENTRY_SCHEMA, BLOCKS: BLOCK_SCHEMA, EXITS: EXIT_SCHEMA}

#: Columns :func:`load_run` requires; the others may be absent (the checks then say so).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    TIMELINE: ("ts", "state", "posterior", "confidence", "position", "equity"),
    ENTRIES: ("ts",),
    BLOCKS: ("ts", "reason"),
    FILLS: (),
}


# -- writing


def write_table(out: str | Path, name: str, table: pa.Table) -> Path:
    """Write ``table`` as ``out/name`` (Parquet, atomically)."""
    import pyarrow.parquet as pq

    path = Path(out) / name
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def write_rows(out: str | Path, name: str, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` as ``out/name`` in that file's schema (entries, blocks, exits)."""
    return write_table(out, name, pa.Table.from_pylist(rows, schema=_ROW_SCHEMAS[name]))


def write_report(out: str | Path, name: str, df: pd.DataFrame) -> Path:
    """Write a Nautilus report as ``out/name``: every column a string (mixed object columns
    would not convert), the index kept as a column when named."""
    df = df.reset_index() if df.index.name is not None else df
    if df.empty:
        table = pa.table({c: pa.array([], pa.string()) for c in df.columns} or {"empty": []})
    else:
        table = pa.Table.from_pandas(df.astype(str), preserve_index=False)
    return write_table(out, name, table)


def write_json(out: str | Path, name: str, obj: Any) -> Path:
    """Write ``obj`` as ``out/name`` (JSON, sorted keys, indented, atomically)."""
    return atomic_write_json(Path(out) / name, obj)


# -- reading


class RunDirError(BadInputError):
    """RUN_DIR is missing a file or holds one that cannot be read; the message names it."""


@dataclass
class RunData:
    """A RUN_DIR loaded: the tables (``day`` column added where absent) and the JSON files
    (``None`` when the file is absent); ``memo`` caches run-wide results of the checks."""

    root: Path
    timeline: pa.Table
    days: np.ndarray
    entries: pd.DataFrame
    blocks: pd.DataFrame
    fills: pd.DataFrame
    guardrails: dict[str, Any] | None
    config: dict[str, Any] | None
    adaptation: dict[str, Any] | None
    summary: dict[str, Any] | None
    truth: pa.Table | None = None
    memo: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)

    @cached_property
    def verdicts(self) -> np.ndarray | None:
        """The timeline's verdict column as an object array (``None`` if absent)."""
        if "verdict" not in self.timeline.column_names:
            return None
        return np.asarray(self.timeline.column("verdict").to_pylist(), dtype=object)

    @cached_property
    def pnl(self) -> np.ndarray:
        """The PnL curve (quote, after fees): the ``pnl`` column, else equity minus its first
        value (a timeline written before ``pnl`` was a column)."""
        if "pnl" in self.timeline.column_names:
            return self.timeline.column("pnl").to_numpy().astype(np.float64)
        equity = self.timeline.column("equity").to_numpy().astype(np.float64)
        return equity - equity[0] if len(equity) else equity


def read_run_json(path: Path) -> dict[str, Any] | None:
    """The JSON object at ``path``, ``None`` if the file is absent; :class:`RunDirError` if it
    is not a JSON object."""
    if not path.exists():
        return None
    return read_json_object(path, RunDirError)


def _read_parquet(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    if not path.is_file():
        raise RunDirError(f"{path}: missing (is this a RUN_DIR written by `nhmm backtest`?)")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise RunDirError(f"{path}: not a readable Parquet file ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS[path.name] if c not in table.column_names]
    if missing:
        raise RunDirError(f"{path}: missing column(s) {missing}")
    return table


def utc_day(ts_ns: np.ndarray) -> np.ndarray:
    """The UTC day (``YYYY-MM-DD``) of each nanosecond timestamp, as an object array.

    >>> utc_day(np.array([0, 86_400 * 10**9]))
    array(['1970-01-01', '1970-01-02'], dtype=object)
    """
    import pandas as pd

    return (
        pd.to_datetime(np.asarray(ts_ns, dtype=np.int64), utc=True)
        .strftime("%Y-%m-%d")
        .to_numpy(dtype=object)
    )


def _day_of(ts_ns: np.ndarray, tl_ts: np.ndarray, tl_days: np.ndarray) -> np.ndarray:
    """The timeline day of each ``ts`` (entries/blocks are stamped with a sample's ts)."""
    if len(ts_ns) == 0:
        return np.array([], dtype=object)
    by_ts = dict(zip(tl_ts.tolist(), tl_days.tolist(), strict=True))
    fallback = utc_day(ts_ns)
    return np.array(
        [by_ts.get(t, f) for t, f in zip(ts_ns.tolist(), fallback, strict=True)], dtype=object
    )


def load_run(run_dir: str | Path) -> RunData:
    """Read a RUN_DIR; raises :class:`RunDirError` naming the file that is missing or broken."""
    root = Path(run_dir)
    if not root.is_dir():
        raise RunDirError(f"{root}: not a directory")
    timeline = _read_parquet(root / TIMELINE)
    tl_ts = timeline.column("ts").to_numpy()
    if len(tl_ts) > 1 and (np.diff(tl_ts) < 0).any():
        raise RunDirError(f"{root / TIMELINE}: ts is not sorted")
    if "day" in timeline.column_names:
        days = np.asarray(timeline.column("day").to_pylist(), dtype=object)
        bad = [i for i, d in enumerate(days) if not isinstance(d, str)]
        if bad:
            raise RunDirError(f"{root / TIMELINE}: row {bad[0]}: day is null")
    else:
        days = utc_day(tl_ts)
    frames = {}
    for name in (ENTRIES, BLOCKS, FILLS):
        df = _read_parquet(root / name).to_pandas()
        if "ts" in df.columns:
            df["day"] = _day_of(df["ts"].to_numpy(dtype=np.int64), tl_ts, days)
        elif "ts_event" in df.columns:  # Nautilus fills: "YYYY-MM-DD hh:mm:ss...+00:00"
            df["day"] = df["ts_event"].astype(str).str[:10]
        frames[name] = df
    return RunData(
        root=root,
        timeline=timeline,
        days=days,
        entries=frames[ENTRIES],
        blocks=frames[BLOCKS],
        fills=frames[FILLS],
        guardrails=read_run_json(root / GUARDRAILS),
        config=read_run_json(root / CONFIG),
        adaptation=read_run_json(root / ADAPTATION),
        summary=read_run_json(root / SUMMARY),
        truth=_read_truth(root / TRUTH),
    )


def _read_truth(path: Path) -> pa.Table | None:
    """``truth.parquet`` if present (it is optional)."""
    import pyarrow.parquet as pq

    if not path.is_file():
        return None
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise RunDirError(f"{path}: not a readable Parquet file ({exc})") from exc


def instrument_facts(instrument: Any, market: str) -> dict[str, Any]:
    """``config.json``'s ``instrument`` block: what a run traded and at which sizes and fees
    (``{"market"}`` alone when the instrument never arrived)."""
    if instrument is None:
        return {"market": market}

    def num(v: Any) -> float | None:
        return None if v is None else float(v)

    return {
        "id": str(instrument.id),
        "market": market,
        "min_notional": num(instrument.min_notional),
        "min_quantity": num(instrument.min_quantity),
        "size_increment": float(instrument.size_increment),
        "price_increment": float(instrument.price_increment),
        "maker_fee": float(instrument.maker_fee),
        "taker_fee": float(instrument.taker_fee),
    }
