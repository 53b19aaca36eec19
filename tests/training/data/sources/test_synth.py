"""The synthetic regime market: determinism, regimes, book validity, labels, Nautilus replay."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.replay import replayed
from training.cli.data import synth as cli
from training.data.catalog import MarketCatalog
from training.data.catalog import SymbolDay
from training.data.catalog import book_state
from training.data.columns import ADD
from training.data.columns import BUY
from training.data.columns import CLEAR
from training.data.columns import DELETE
from training.data.columns import F_LAST
from training.data.columns import F_SNAPSHOT
from training.data.columns import SELL
from training.data.columns import UPDATE
from training.data.sources.synth import CALM
from training.data.sources.synth import PRESETS
from training.data.sources.synth import TRENDING
from training.data.sources.synth import VOLATILE
from training.data.sources.synth import LabelsNotFoundError
from training.data.sources.synth import SynthConfig
from training.data.sources.synth import SynthDay
from training.data.sources.synth import generate
from training.data.sources.synth import load_labels
from training.data.sources.synth import preset
from training.data.sources.synth import regime_segments
from training.data.sources.synth import synth
from training.errors import NotFoundError

DAY = datetime.date(2024, 1, 1)
# Shorter dwell times than the CLI default so a 2-hour test day holds many segments of each.
SHORT = tuple(
    dataclasses.replace(r, mean_minutes=m)
    for r, m in zip(SynthConfig().regimes, (6.0, 5.0, 4.0), strict=True)
)
CFG = SynthConfig(day_seconds=7200, seed=7, regimes=SHORT)


@pytest.fixture(scope="module")
def day() -> SynthDay:
    return next(generate(CFG))


def _digest(d: SynthDay) -> str:
    h = hashlib.sha256()
    for cols in (d.events.deltas, d.events.trades):
        for name in cols.names():
            h.update(np.ascontiguousarray(getattr(cols, name)).tobytes())
    h.update(d.labels.ts_event.tobytes() + d.labels.regime.tobytes())
    return h.hexdigest()


class Replay:
    """A plain dict L2 book replayed message by message, checking every rule on the way."""

    def __init__(self, d: SynthDay) -> None:
        dl, tr = d.events.deltas, d.events.trades
        books: dict[int, dict[float, float]] = {BUY: {}, SELL: {}}
        last_update: dict[tuple[int, int, float], tuple[float, float]] = {}
        ts_l, bid_l, ask_l, bsz_l, asz_l = [], [], [], [], []
        action, side, price, size = (
            dl.action.tolist(),
            dl.side.tolist(),
            dl.price.tolist(),
            dl.size.tolist(),
        )
        flags, ts = dl.flags.tolist(), dl.ts_event.tolist()
        for i in range(len(action)):
            a = action[i]
            if a == CLEAR:
                books[BUY].clear()
                books[SELL].clear()
            else:
                book, p = books[side[i]], price[i]
                if a == ADD:
                    assert p not in book, f"delta {i}: ADD of an existing level {p}"
                    assert size[i] > 0, f"delta {i}: ADD with size {size[i]}"
                    book[p] = size[i]
                elif a == UPDATE:
                    assert p in book and size[i] > 0, f"delta {i}: bad UPDATE at {p}"
                    last_update[(ts[i], side[i], p)] = (book[p], size[i])
                    book[p] = size[i]
                else:
                    assert a == DELETE and p in book, f"delta {i}: DELETE of a missing level"
                    del book[p]
            if flags[i] & F_LAST:
                bb, ba = max(books[BUY]), min(books[SELL])
                assert bb < ba, f"crossed book after message ending at delta {i}"
                assert len(books[BUY]) == len(books[SELL]) == CFG.levels
                ts_l.append(ts[i])
                bid_l.append(bb)
                ask_l.append(ba)
                bsz_l.append(books[BUY][bb])
                asz_l.append(books[SELL][ba])
        self.ts = np.asarray(ts_l, dtype=np.int64)
        self.bid, self.ask = np.asarray(bid_l), np.asarray(ask_l)
        self.bid_size, self.ask_size = np.asarray(bsz_l), np.asarray(asz_l)
        # every trade consumed exactly its size at the best level of the passive side
        msg_of_ts = {t: j for j, t in enumerate(ts_l)}
        for t, p, q, agg in zip(
            tr.ts_event.tolist(),
            tr.price.tolist(),
            tr.size.tolist(),
            tr.aggressor.tolist(),
            strict=True,
        ):
            passive = SELL if agg == 1 else BUY
            before, after = last_update[(t, passive, p)]
            assert abs((before - after) - q) < 1e-9
            j = msg_of_ts[t]
            assert p == (self.ask[j] if passive == SELL else self.bid[j])


@pytest.fixture(scope="module")
def replay(day: SynthDay) -> Replay:
    return Replay(day)


def test_same_seed_same_bytes_other_seed_differs(day: SynthDay) -> None:
    again = next(generate(CFG))
    other = next(generate(dataclasses.replace(CFG, seed=8)))
    assert _digest(again) == _digest(day)
    assert _digest(other) != _digest(day)


def test_regime_chain_follows_configured_transitions_and_durations() -> None:
    cfg = SynthConfig(min_segment_s=30.0)
    rng = np.random.default_rng(0)
    steps_per_s = 1000 / cfg.step_ms
    starts, regs, _ = regime_segments(cfg, 400 * cfg.steps_per_day, rng)
    assert set(regs.tolist()) == {CALM, TRENDING, VOLATILE}
    counts = np.zeros((3, 3))
    np.add.at(counts, (regs[:-1], regs[1:]), 1)
    assert np.diag(counts).sum() == 0
    empirical = counts / counts.sum(axis=1, keepdims=True)
    assert np.abs(empirical - np.asarray(cfg.transitions)).max() < 0.03
    dur_min = np.diff(starts) / steps_per_s / 60
    for r, p in enumerate(cfg.regimes):
        d = dur_min[regs[:-1] == r]
        assert d.min() >= cfg.min_segment_s / 60 - 1e-9
        assert abs(d.mean() / p.mean_minutes - 1) < 0.05, (p.name, d.mean())


def test_day_shape_snapshot_flags_timestamps_and_grid(day: SynthDay) -> None:
    dl, tr = day.events.deltas, day.events.trades
    snap = np.flatnonzero(dl.flags & F_SNAPSHOT)
    assert dl.action[0] == CLEAR and snap.tolist() == list(range(2 * CFG.levels + 1))
    assert dl.flags[snap[-1]] & F_LAST and not (dl.flags[snap[:-1]] & F_LAST).any()
    assert (dl.action[snap[-1] + 1 :] != CLEAR).all()
    day_start = int(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC).timestamp()) * 10**9
    assert dl.ts_event[0] == day_start
    assert dl.ts_event.max() < day_start + CFG.day_seconds * 10**9
    for cols in (dl, tr):
        assert (np.diff(cols.ts_event) >= 0).all() and (np.diff(cols.ts_init) >= 0).all()
        lat = cols.ts_init - cols.ts_event
        assert lat.min() >= 1_000_000 and lat.max() <= 20_000_000 + 25_000_000
    # one ts_event per message, so F_LAST closes exactly each distinct timestamp
    assert int((dl.flags & F_LAST).astype(bool).sum()) == len(np.unique(dl.ts_event))
    # prices on the 0.01 tick grid, sizes on the 0.00001 step grid, positive where they matter
    live = dl.action != CLEAR
    for v, unit in ((dl.price[live], 100), (tr.price, 100), (tr.size, 100_000)):
        assert np.abs(v * unit - np.round(v * unit)).max() < 1e-6
    sized = (dl.action == ADD) | (dl.action == UPDATE)
    assert (dl.size[sized] >= 1e-5).all() and (dl.size[dl.action == DELETE] == 0).all()
    assert (tr.size > 0).all() and len(np.unique(tr.trade_id)) == len(tr)


def test_book_valid_and_trades_consume_best_level(replay: Replay, day: SynthDay) -> None:
    # Replay asserted: no crossed book, 20 levels a side, ADD/UPDATE/DELETE consistent, and
    # each trade's size equals what its UPDATE removed from the passive best level.
    assert len(replay.ts) == day.messages
    assert len(day.events.trades) > 10_000


def test_all_regimes_present_with_message_rates(replay: Replay, day: SynthDay) -> None:
    lab = day.labels
    assert set(lab.regime.tolist()) == {CALM, TRENDING, VOLATILE}
    assert len(replay.ts) / CFG.day_seconds >= 10
    regime = lab.regime_at(replay.ts)
    rates = {}
    for r, p in enumerate(CFG.regimes):
        secs = day.regime_seconds[p.name]
        rates[r] = (regime == r).sum() / secs
        assert rates[r] >= 10
        assert abs(rates[r] / p.msg_rate - 1) < 0.05
    assert rates[VOLATILE] > rates[TRENDING] > rates[CALM]


def test_labels_align_with_behaviour_segment_by_segment(replay: Replay, day: SynthDay) -> None:
    """Each labelled segment shows its own regime's message rate, to the second."""
    lab = day.labels
    bounds = np.r_[lab.ts_event, lab.ts_event[0] + CFG.day_seconds * 10**9]
    for i, r in enumerate(lab.regime.tolist()):
        a, b = bounds[i], bounds[i + 1]
        n = ((replay.ts >= a) & (replay.ts < b)).sum()
        expected = CFG.regimes[r].msg_rate * (b - a) / 1e9
        assert abs(n - expected) < 5 * np.sqrt(expected) + 2, (i, r, n, expected)


def _per_second(replay: Replay, day: SynthDay) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t0 = replay.ts[0]
    grid = t0 + np.arange(1, CFG.day_seconds) * 10**9
    idx = np.searchsorted(replay.ts, grid, side="right") - 1
    mid = (replay.bid[idx] + replay.ask[idx]) / 2
    ret = np.diff(np.log(mid))
    reg = day.labels.regime_at(grid[1:])
    same = reg == day.labels.regime_at(grid[:-1])
    return ret, reg, same


def test_regimes_differ_in_the_intended_direction(replay: Replay, day: SynthDay) -> None:
    msg_reg = day.labels.regime_at(replay.ts)
    spread_bp = 2e4 * (replay.ask - replay.bid) / (replay.ask + replay.bid)
    spread = {r: np.mean(spread_bp, where=msg_reg == r) for r in range(3)}
    depth = {r: np.mean(replay.bid_size + replay.ask_size, where=msg_reg == r) for r in range(3)}
    # one 0.2 bp level in calm, ~0.4 bp trending, ~1 bp volatile (real BTCUSDT top of book:
    # 0.002-0.02 bp; wider books are the realistic-volatility price of a sparse ladder)
    assert 0.18 < spread[CALM] < 0.3 < spread[TRENDING] < 0.6 < spread[VOLATILE] < 1.5
    assert depth[CALM] > depth[TRENDING] > depth[VOLATILE]

    ret, reg, same = _per_second(replay, day)
    vol = {r: ret[(reg == r) & same].std() for r in range(3)}
    assert vol[VOLATILE] > 2.5 * max(vol[CALM], vol[TRENDING])

    def autocorr(r: int) -> float:
        m = (reg[1:] == r) & (reg[:-1] == r) & same[1:] & same[:-1]
        return float(np.corrcoef(ret[:-1][m], ret[1:][m])[0, 1])

    assert autocorr(CALM) < -0.2 < autocorr(VOLATILE)

    tr = day.events.trades
    sign = np.where(tr.aggressor == 1, 1, -1)
    t_reg = day.labels.regime_at(tr.ts_event)
    pair = t_reg[1:] == t_reg[:-1]

    def persistence(r: int) -> float:
        m = pair & (t_reg[1:] == r)
        return float((sign[1:][m] == sign[:-1][m]).mean())

    assert persistence(TRENDING) > persistence(VOLATILE) > persistence(CALM) + 0.05
    assert abs(persistence(CALM) - 0.5) < 0.05


def test_trending_segments_move_with_their_trade_flow(replay: Replay, day: SynthDay) -> None:
    """Flow and depth always lean with the drift; the price follows it in every segment long
    enough for the drift (0.1 bp/s) to beat the 1.1 bp/sqrt(s) noise (>= 5 min), and in most."""
    lab, tr = day.labels, day.events.trades
    bounds = np.r_[lab.ts_event, lab.ts_event[0] + CFG.day_seconds * 10**9]
    agree = long_agree = long = 0
    trending = np.flatnonzero(lab.regime == TRENDING)
    for i in trending:
        a, b = bounds[i], bounds[i + 1]
        m = (replay.ts >= a) & (replay.ts < b)
        move = (replay.bid[m][-1] + replay.ask[m][-1]) - (replay.bid[m][0] + replay.ask[m][0])
        flow = np.where(tr.aggressor[(tr.ts_event >= a) & (tr.ts_event < b)] == 1, 1, -1).sum()
        imbalance = np.mean(replay.bid_size[m] - replay.ask_size[m])
        assert np.sign(flow) == np.sign(imbalance) != 0, i
        agree += int(np.sign(move) == np.sign(flow))
        if b - a >= 300 * 10**9:
            long += 1
            long_agree += int(np.sign(move) == np.sign(flow))
    assert len(trending) >= 5 and long >= 3 and long_agree == long
    assert agree >= 0.7 * len(trending)


def test_bp_volatility_is_realistic_per_regime(replay: Replay, day: SynthDay) -> None:
    """Calibrated on real BTCUSDT 1-s returns (std 1.1 bp spot, 1.2 bp perp): calm below it,
    trending at it with a drift of 0.1 bp/s, volatile three times it; 1-min vol ~7 bp."""
    ret, reg, same = _per_second(replay, day)
    ret_bp = ret * 1e4
    vol = {r: ret_bp[(reg == r) & same].std() for r in range(3)}
    assert 0.4 < vol[CALM] < 0.9
    assert 0.9 < vol[TRENDING] < 1.35
    assert 2.6 < vol[VOLATILE] < 4.0
    lab = day.labels
    bounds = np.r_[lab.ts_event, lab.ts_event[0] + CFG.day_seconds * 10**9]
    drift = []
    for i in np.flatnonzero(lab.regime == TRENDING):
        m = (replay.ts >= bounds[i]) & (replay.ts < bounds[i + 1])
        mid = (replay.bid[m] + replay.ask[m]) / 2
        drift.append(abs(np.log(mid[-1] / mid[0])) * 1e4 / ((bounds[i + 1] - bounds[i]) / 1e9))
    assert 0.07 < np.mean(drift) < 0.14, drift
    # the mid jumps many instrument ticks at a time, on the 0.2 bp level grid (84 ticks)
    lt = CFG.level_ticks(0.01)
    assert lt == 84
    ticks = np.round(replay.bid * 100).astype(np.int64)
    assert (ticks % lt == 0).all()
    jumps = np.abs(np.diff(ticks))
    assert np.median(jumps[jumps > 0]) >= lt
    # 10 minutes into a trend the price has typically moved more than a 20 bp round trip
    t0 = replay.ts[0]
    grid = t0 + np.arange(0, CFG.day_seconds - 60, 60) * 10**9
    i0 = np.searchsorted(replay.ts, grid, side="right") - 1
    i1 = np.searchsorted(replay.ts, grid + 600 * 10**9, side="right") - 1
    valid = grid + 600 * 10**9 < t0 + CFG.day_seconds * 10**9
    move = np.abs(np.log(replay.bid[i1] / replay.bid[i0]))[valid] * 1e4
    trend = (lab.regime_at(grid) == TRENDING)[valid]
    assert np.median(move[trend]) > 20


def test_micro_preset_keeps_the_old_tick_scale_market() -> None:
    cfg = preset("micro", day_seconds=1800, seed=7)
    assert cfg.level_bp == 0.0 and cfg.level_ticks(0.01) == 1
    d = next(generate(cfg))
    r = Replay(d)
    mid = (r.bid + r.ask) / 2
    grid = r.ts[0] + np.arange(1, 1800) * 10**9
    ret_bp = np.diff(np.log(mid[np.searchsorted(r.ts, grid, side="right") - 1])) * 1e4
    assert ret_bp.std() < 0.05  # tick-scale moves: far below any fee
    assert set(PRESETS) == {"realistic", "micro", "null"}  # issue 11 adds the null market
    with pytest.raises(ValueError, match="preset"):
        preset("wild")


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"SynthConfig\.day_seconds"):
        SynthConfig(day_seconds=0)
    with pytest.raises(ValueError, match=r"SynthConfig\.transitions"):
        SynthConfig(transitions=((0.0, 1.0, 0.0), (0.5, 0.5, 0.0), (1.0, 0.0, 0.0)))
    with pytest.raises(ValueError, match=r"SynthConfig\.market"):
        SynthConfig(market="coinm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"SynthConfig\.level_bp"):
        SynthConfig(level_bp=-1.0)
    bad = dataclasses.replace(SynthConfig().regimes[0], vol_bp=float("nan"))
    with pytest.raises(ValueError, match=r"SynthConfig\.regimes\[0\]\.vol_bp"):
        SynthConfig(regimes=(bad, *SynthConfig().regimes[1:]))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[MarketCatalog, SynthConfig]:
    root = tmp_path_factory.mktemp("synth_cat")
    cfg = dataclasses.replace(CFG, day_seconds=1800, days=2, seed=11)
    report = synth(cfg, root, name="t")
    assert report.symbol_days == ["BTCUSDT.BINANCE/2024-01-01", "BTCUSDT.BINANCE/2024-01-02"]
    return MarketCatalog(root), cfg


def test_written_day_reads_back_with_aligned_labels(
    written: tuple[MarketCatalog, SynthConfig],
) -> None:
    cat, cfg = written
    days = list(generate(cfg))
    rep = json.loads((cat.root / "reports" / "t.json").read_text())
    assert rep["deltas"] == sum(len(d.events.deltas) for d in days)
    assert rep["trades"] == sum(len(d.events.trades) for d in days)
    for d in days:
        ev = cat.load("BTCUSDT", d.day)
        assert np.array_equal(ev.deltas.ts_event, d.events.deltas.ts_event)
        assert np.array_equal(ev.deltas.action, d.events.deltas.action)
        assert np.allclose(ev.deltas.price, d.events.deltas.price, rtol=0, atol=1e-9)
        assert np.allclose(ev.trades.size, d.events.trades.size, rtol=0, atol=1e-12)
        lab = load_labels(cat, "BTCUSDT", d.day)
        assert lab.names == ("calm", "trending", "volatile")
        assert np.array_equal(lab.ts_event, d.labels.ts_event)
        assert np.array_equal(lab.regime, d.labels.regime)
        # labels sit on the step grid and the first one opens the day
        assert lab.ts_event[0] == ev.deltas.ts_event[0]
        assert ((lab.ts_event - lab.ts_event[0]) % (cfg.step_ms * 1_000_000) == 0).all()
        assert np.array_equal(
            lab.regime_at(ev.deltas.ts_event), d.labels.regime_at(ev.deltas.ts_event)
        )
    # day 2 continues day 1's chain: the regime at the end of day 1 opens day 2
    assert load_labels(cat, "BTCUSDT", days[1].day).regime[0] == days[0].labels.regime[-1]
    with pytest.raises(FileNotFoundError, match="2024-01-05"):
        load_labels(cat, "BTCUSDT", datetime.date(2024, 1, 5))


def test_synthetic_day_replays_in_a_nautilus_backtest_engine(
    written: tuple[MarketCatalog, SynthConfig],
) -> None:
    cat, _ = written
    inst = cat.instrument("BTCUSDT")
    sd = SymbolDay(inst.id.value, datetime.date(2024, 1, 2))
    start = datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC)
    end = start + datetime.timedelta(days=1) - datetime.timedelta(microseconds=1)
    deltas = cat.nautilus.order_book_deltas(instrument_ids=[inst.id.value], start=start, end=end)
    trades = cat.nautilus.trade_ticks(instrument_ids=[inst.id.value], start=start, end=end)
    ev = cat.load(sd.symbol, sd.day)
    assert len(deltas) == len(ev.deltas) and len(trades) == len(ev.trades)
    with replayed(inst, "spot", deltas, trades) as (probe, book):
        assert probe.deltas == len(ev.deltas)
        assert probe.trades == len(ev.trades)
        assert probe.batches == int((ev.deltas.flags & F_LAST).astype(bool).sum())
        side, price, size = book_state(ev.deltas)
        assert book.best_bid_price().as_double() == price[side == BUY][0]
        assert book.best_ask_price().as_double() == price[side == SELL][0]
        assert book.best_ask_size().as_double() == size[side == SELL][0]
        assert len(book.bids()) == len(book.asks()) == CFG.levels


def test_cli_prints_the_report_path(tmp_path: Path) -> None:
    out = tmp_path / "cat"
    args = ["--out", str(out), "--day-seconds", "300", "--seed", "3", "--market", "usdm"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    path = Path(res.stdout.strip())
    assert path == out.resolve() / "reports" / "synth-BTCUSDT-usdm-seed3.json"
    rep = json.loads(path.read_text())
    assert rep["symbol_days"] == ["BTCUSDT-PERP.BINANCE/2024-01-01"]
    assert rep["events"] == rep["deltas"] + rep["trades"] > 3000
    ev = MarketCatalog(out).load("BTCUSDT-PERP", DAY)
    assert np.abs(ev.deltas.price * 10 - np.round(ev.deltas.price * 10)).max() < 1e-6  # 0.1 tick
    assert (ev.trades.size * 1000 >= 1 - 1e-9).all()  # 0.001 step
    bad = CliRunner().invoke(cli, ["--out", str(out), "--start", "2024-13-01"])
    assert bad.exit_code != 0 and "SynthConfig.start" in bad.output
    assert rep["extra"]["config"]["level_bp"] == 0.2
    micro = CliRunner().invoke(cli, ["--out", str(tmp_path / "m"), "--day-seconds", "60",
                                     "--preset", "micro"])  # fmt: skip
    assert micro.exit_code == 0, micro.output
    cfg = json.loads(Path(micro.stdout.strip()).read_text())["extra"]["config"]
    assert cfg["level_bp"] == 0.0 and cfg["regimes"][2]["vol_bp"] < 0.02


def test_missing_labels_are_not_found(written: tuple[MarketCatalog, SynthConfig]) -> None:
    cat, _ = written
    with pytest.raises(LabelsNotFoundError) as err:
        load_labels(cat, "BTCUSDT", datetime.date(2024, 1, 5))
    assert isinstance(err.value, NotFoundError) and err.value.field == "days"
    with pytest.raises(NotFoundError, match="ETHUSDT"):
        load_labels(cat, "ETHUSDT", DAY)
