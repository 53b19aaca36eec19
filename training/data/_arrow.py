"""Arrow tables in Nautilus's own Parquet schema, built from and read back into columns.

One layout table per kind (``order_book_deltas``, ``trade_tick``, ``quote_tick``) says each
Arrow column's name, type and source attribute; the schema, the writer and the reader all
follow it, so they cannot disagree. Prices and sizes are 128-bit fixed point
(:mod:`training.data.fixed`) at the instrument's price / size precision.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.data.columns import DeltaColumns
from training.data.columns import QuoteColumns
from training.data.columns import TradeColumns
from training.data.fixed import decode_fixed
from training.data.fixed import encode_fixed
from training.errors import BadInputError

Columns = DeltaColumns | TradeColumns | QuoteColumns

_FIXED, _U8, _U64, _ID = pa.binary(16), pa.uint8(), pa.uint64(), pa.string()
_TS = (("ts_event", _U64, "ts_event"), ("ts_init", _U64, "ts_init"))

#: kind -> (Arrow column, type, attribute of the columns object; None: always zero), file order.
LAYOUTS: dict[str, tuple[tuple[str, pa.DataType, str | None], ...]] = {
    "order_book_deltas": (
        ("action", _U8, "action"),
        ("side", _U8, "side"),
        ("price", _FIXED, "price"),
        ("size", _FIXED, "size"),
        ("order_id", _U64, None),
        ("flags", _U8, "flags"),
        ("sequence", _U64, "sequence"),
        *_TS,
    ),
    "trade_tick": (
        ("price", _FIXED, "price"),
        ("size", _FIXED, "size"),
        ("aggressor_side", _U8, "aggressor"),
        ("trade_id", _ID, "trade_id"),
        *_TS,
    ),
    "quote_tick": (
        ("bid_price", _FIXED, "bid_price"),
        ("ask_price", _FIXED, "ask_price"),
        ("bid_size", _FIXED, "bid_size"),
        ("ask_size", _FIXED, "ask_size"),
        *_TS,
    ),
}
KINDS = tuple(LAYOUTS)
COLUMNS: dict[str, type[Columns]] = {
    "order_book_deltas": DeltaColumns,
    "trade_tick": TradeColumns,
    "quote_tick": QuoteColumns,
}
SCHEMAS = {
    kind: pa.schema([pa.field(name, typ, nullable=False) for name, typ, _ in layout])
    for kind, layout in LAYOUTS.items()
}


def to_table(kind: str, cols: Columns, instrument_id: str, pp: int, sp: int) -> pa.Table:
    """``cols`` as a Nautilus ``kind`` table (schema metadata: instrument id and precisions)."""
    meta = {"instrument_id": instrument_id, "price_precision": str(pp), "size_precision": str(sp)}
    arrays = []
    for name, typ, attr in LAYOUTS[kind]:
        values = np.zeros(len(cols), dtype=np.uint64) if attr is None else getattr(cols, attr)
        if typ == _FIXED:
            precision = pp if name.endswith("price") else sp
            arrays.append(encode_fixed(values, precision, f"{kind}.{name}"))
        elif typ == _ID:
            arrays.append(pc.cast(pa.array(values, type=pa.int64()), pa.string()))
        else:
            arrays.append(pa.array(np.asarray(values).astype(typ.to_pandas_dtype(), copy=False)))
    return pa.Table.from_arrays(arrays, schema=SCHEMAS[kind].with_metadata(meta))


def from_table(kind: str, table: pa.Table) -> Columns:
    """The columns of a Nautilus ``kind`` table (prices exactly as ``as_double()``)."""
    cls = COLUMNS[kind]
    dtypes = dict(zip(cls.names(), cls.DTYPES, strict=True))
    out: dict[str, np.ndarray] = {}
    for name, typ, attr in LAYOUTS[kind]:
        if attr is None:
            continue
        col = table.column(name)
        if typ == _FIXED:
            out[attr] = decode_fixed(col)
            continue
        if typ == _ID:
            try:
                col = pc.cast(col, pa.int64())
            except pa.ArrowInvalid as exc:
                field = f"{kind}.{name}"
                raise BadInputError(f"{field}: not an integer id ({exc})", field=field) from exc
        out[attr] = np.array(col.to_numpy(), dtype=dtypes[attr])  # a writable copy
    return cls(**out)
