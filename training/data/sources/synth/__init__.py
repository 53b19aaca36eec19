"""A synthetic regime market: L2 deltas and trades driven by a hidden Markov chain of regimes.

Ground truth for the HMM. A jump chain over regimes (default ``calm``, ``trending``,
``volatile``; exponential dwell times with a floor, no self-transitions) drives, per regime:
message rate, fair-value dynamics (mean-reverting / drifting / wild, in bp of price, calibrated
on real BTCUSDT: about 0.6 / 1.1 / 3.3 bp per second), spread, depth and its side skew, queue
refresh rate, trade rate and trade-sign persistence. The book is a 20-level (``levels``) ladder
per side on a grid of ``level_bp`` (whole instrument ticks), so the mid jumps several ticks at
once and the ladder re-centres as it moves; every message is a batch of deltas
(deletes, then adds, then size updates, then the trade's consumption of the best level) ending
in ``F_LAST``, and each day opens with CLEAR + a full ``F_SNAPSHOT`` book.

Everything is vectorised with numpy over *messages* (a per-``step_ms`` activity grid), with a
Python loop only over regime segments (a few hundred a day). Sizes live on the step grid as
integer units; a trade multiplies the best level's size by a factor in (0, 1) and the trade
size is exactly the consumed amount, so book and trades agree. Same config (and seed) →
byte-identical columns.

Labels (:mod:`.labels`, Parquet beside each partition): one row per regime segment that covers
the day; the regime of any time ``t`` is :meth:`RegimeLabels.regime_at`. Segment boundaries sit
on the step grid and every event of a step carries the step's regime. The config and presets are
:mod:`.presets`, the simulator ``_simulate``.

>>> from training.data.columns import F_LAST
>>> cfg = SynthConfig(day_seconds=600, seed=3)
>>> day = next(generate(cfg))
>>> day.day, int(day.events.deltas.action[0]), int(day.events.deltas.flags[-1]) & F_LAST
(datetime.date(2024, 1, 1), 4, 128)
>>> bool((day.labels.regime_at(day.events.deltas.ts_event) >= 0).all())
True
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from training.data.sources.synth._simulate import DayState
from training.data.sources.synth._simulate import SynthDay
from training.data.sources.synth._simulate import regime_segments
from training.data.sources.synth._simulate import simulate_day
from training.data.sources.synth.labels import LabelsNotFoundError
from training.data.sources.synth.labels import RegimeLabels
from training.data.sources.synth.labels import load_labels
from training.data.sources.synth.labels import write_labels
from training.data.sources.synth.presets import CALM
from training.data.sources.synth.presets import PRESETS
from training.data.sources.synth.presets import TRENDING
from training.data.sources.synth.presets import VOLATILE
from training.data.sources.synth.presets import RegimeParams
from training.data.sources.synth.presets import SynthConfig
from training.data.sources.synth.presets import preset

if TYPE_CHECKING:
    from nautilus_trader.model.instruments import Instrument

    from training.data.report import ImportReport

__all__ = [
    "CALM",
    "PRESETS",
    "TRENDING",
    "VOLATILE",
    "LabelsNotFoundError",
    "RegimeLabels",
    "RegimeParams",
    "SynthConfig",
    "SynthDay",
    "generate",
    "load_labels",
    "preset",
    "regime_segments",
    "synth",
    "synth_instrument",
    "write_labels",
]


def synth_instrument(config: SynthConfig) -> Instrument:
    """The real Binance instrument (bundled exchangeInfo) the synthetic market trades."""
    from training.data.instruments import binance_instrument

    return binance_instrument(config.symbol, config.market)


def generate(config: SynthConfig, instrument: Instrument | None = None) -> Iterator[SynthDay]:
    """Yield one :class:`SynthDay` per configured day, in order (lazily: one day in memory)."""
    inst = synth_instrument(config) if instrument is None else instrument
    grid = (
        float(inst.price_increment),
        float(inst.size_increment),
        int(inst.price_precision),
        int(inst.size_precision),
    )
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0]))
    segments = regime_segments(config, config.days * config.steps_per_day, rng)
    state = DayState()
    for d in range(config.days):
        yield simulate_day(config, d, segments, state, *grid)


def synth(
    config: SynthConfig,
    catalog_root: str | Path,
    name: str | None = None,
    progress: bool = False,
) -> ImportReport:
    """Generate ``config.days`` days into the catalog at ``catalog_root``, with labels.

    Each day is written atomically by ``MarketCatalog.write`` and its labels beside it (temp
    file + rename); the report goes to ``CATALOG/reports/<name>.json`` (``report.extra`` holds
    the config, per-regime seconds, message count and label paths).
    """
    from tqdm import tqdm

    from training.data.catalog import SymbolDay
    from training.data.report import ImportReport
    from training.data.sources._importer import ImportWriter

    t0 = time.perf_counter()
    inst = synth_instrument(config)
    name = name or f"synth-{config.symbol}-{config.market}-seed{config.seed}"
    report = ImportReport(name=name, sources=[f"synth:seed={config.seed}"])
    writer = ImportWriter(catalog_root, report)
    cat = writer.catalog
    regime_s = dict.fromkeys(config.regime_names, 0.0)
    label_paths: list[str] = []
    gen_s = write_s = 0.0
    messages = 0
    days = generate(config, inst)
    for _ in tqdm(range(config.days), desc="synth days", unit="day", disable=not progress):
        g = time.perf_counter()
        day = next(days)
        w = time.perf_counter()
        gen_s += w - g
        sd = SymbolDay(inst.id.value, day.day)
        written = writer.write(inst, day.events)
        if written != [sd]:
            raise RuntimeError(f"expected partition {sd}, catalog wrote {written}")
        path = cat.labels_path(sd)
        write_labels(path, day.labels)
        write_s += time.perf_counter() - w
        label_paths.append(str(path.relative_to(cat.root)))
        messages += day.messages
        for k, v in day.regime_seconds.items():
            regime_s[k] += v
    cfg = asdict(config)
    cfg["regimes"] = [asdict(r) for r in config.regimes]
    report.extra = {
        "config": cfg,
        "messages": messages,
        "regime_seconds": regime_s,
        "labels": label_paths,
        "generate_s": round(gen_s, 3),
        "write_s": round(write_s, 3),
    }
    writer.close(t0)
    return report
