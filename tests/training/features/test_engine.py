"""FEATURES_V1 engine on hand-made events: schema, clock, feature values, causality, no NaN."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.feature_streams import random_stream
from training.data.columns import ADD
from training.data.columns import BUY
from training.data.columns import BUYER
from training.data.columns import CLEAR
from training.data.columns import DELETE
from training.data.columns import F_LAST
from training.data.columns import SELL
from training.data.columns import SELLER
from training.data.columns import UPDATE
from training.data.columns import DeltaColumns
from training.data.columns import TradeColumns
from training.features import PERP_FEATURES
from training.features import SPOT_FEATURES
from training.features import FeatureEngine
from training.features import FeatureSample
from training.features import FeatureSchema
from training.features import SchemaMismatch
from training.features import samples_to_columns
from training.features import schema_for

S = 1_000_000_000  # one second in ns
IDX = {n: i for i, n in enumerate(PERP_FEATURES)}


def short_schema(market: str, **kw: float) -> FeatureSchema:
    """A schema whose raw lookbacks are 5 s, so warm-up is set by ``min_periods_s``."""
    short = {"rv_window_s": 5.0, "autocorr_window_s": 5.0, "trade_window_s": 5.0}
    return schema_for(market, **{**short, **kw})


def book(eng: FeatureEngine, ts: int, bids: dict[float, float], asks: dict[float, float]) -> list:
    """A CLEAR + snapshot message setting the whole book."""
    rows = [(CLEAR, 0, 0.0, 0.0)]
    rows += [(ADD, BUY, p, q) for p, q in bids.items()]
    rows += [(ADD, SELL, p, q) for p, q in asks.items()]
    a, s, p, q = zip(*rows, strict=True)
    return eng.on_deltas(ts, a, s, p, q)


def deliver(eng: FeatureEngine, d: DeltaColumns, t: TradeColumns) -> list[FeatureSample]:
    """Feed like a Nautilus BacktestEngine: stable ts_init order (deltas first on ties),
    deltas buffered per message until F_LAST, each message / trade through the online API."""
    items = [(int(d.ts_init[i]), 0, i) for i in range(len(d))]
    items += [(int(t.ts_init[j]), 1, j) for j in range(len(t))]
    items.sort(key=lambda x: x[0])
    out: list[FeatureSample] = []
    buf: list[int] = []
    for _, kind, i in items:
        if kind == 0:
            buf.append(i)
            if d.flags[i] & F_LAST:
                out += eng.on_deltas(
                    int(d.ts_event[buf[-1]]),
                    [int(d.action[k]) for k in buf],
                    [int(d.side[k]) for k in buf],
                    [float(d.price[k]) for k in buf],
                    [float(d.size[k]) for k in buf],
                )
                buf = []
        else:
            out += eng.on_trade(
                int(t.ts_event[i]), float(t.price[i]), float(t.size[i]), int(t.aggressor[i])
            )
    return out


# ---- schema ----------------------------------------------------------------------------------
def test_schema_names_version_and_perp_only_features() -> None:
    spot, perp = schema_for("spot"), schema_for("perp")
    assert spot.version == perp.version == "FEATURES_V1"
    assert spot.names == SPOT_FEATURES and len(spot.names) == 10
    assert perp.names == (*SPOT_FEATURES, "time_to_funding", "funding_rate_bp")
    assert "time_to_funding" not in spot.names and "funding_rate_bp" not in spot.names
    assert spot.standardise_window_s == 4500.0 and spot.sample_interval_s == 1.0


def test_schema_round_trips_through_json_and_refuses_other_versions() -> None:
    s = schema_for("perp", standardise_window_s=3600.0, top_n=3)
    back = FeatureSchema.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s and back.top_n == 3
    with pytest.raises(SchemaMismatch, match="version"):
        FeatureSchema.from_dict({**s.to_dict(), "version": "FEATURES_V2"})
    with pytest.raises(SchemaMismatch, match="names"):
        FeatureSchema.from_dict({**s.to_dict(), "names": list(SPOT_FEATURES)})
    with pytest.raises(SchemaMismatch, match="unknown"):
        FeatureSchema.from_dict({**s.to_dict(), "colour": 1})


def test_check_vector_refuses_wrong_version_length_and_nan() -> None:
    s = schema_for("spot")
    s.check_vector("FEATURES_V1", np.zeros(10))
    with pytest.raises(SchemaMismatch, match="version"):
        s.check_vector("FEATURES_V0", np.zeros(10))
    with pytest.raises(SchemaMismatch, match="shape"):
        s.check_vector("FEATURES_V1", np.zeros(12))
    with pytest.raises(SchemaMismatch, match="non-finite"):
        s.check_vector("FEATURES_V1", [math.nan] + [0.0] * 9)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"market": "futures"}, "market"),
        ({"sample_interval_s": 0.0}, "sample_interval_s"),
        ({"min_periods_s": 9000.0}, "min_periods_s"),
        ({"top_n": 0}, "top_n"),
    ],
)
def test_schema_bad_values_name_the_field(overrides: dict, field: str) -> None:
    market = overrides.pop("market", "spot")
    with pytest.raises(ValueError, match=field):
        schema_for(market, **overrides)


# ---- clock -----------------------------------------------------------------------------------
def test_sample_carries_state_strictly_before_boundary_and_emits_on_first_event_past_it() -> None:
    eng = FeatureEngine(schema_for("spot"))
    assert book(eng, 100 * S + S // 5, {100.0: 1.0}, {100.02: 1.0}) == []
    assert eng.on_deltas(100 * S + S // 2, [UPDATE], [SELL], [100.04], [2.0]) == []
    assert eng.on_deltas(100 * S + 9 * S // 10, [DELETE], [SELL], [100.02], [0.0]) == []
    # an event exactly at the boundary is not part of the sample stamped at that boundary
    out = eng.on_trade(101 * S, 100.03, 1.0, BUYER)
    assert [s.ts_ns for s in out] == [101 * S]
    s = out[0]
    assert (s.best_bid, s.best_ask) == (100.0, 100.04)
    assert s.mid == pytest.approx(100.02) and s.book_ok
    # the trade at 101 s lands in the next sample
    out = eng.on_deltas(102 * S + 1, [UPDATE], [BUY], [100.01], [1.0])
    assert [x.ts_ns for x in out] == [102 * S]
    assert out[0].raw[IDX["trade_sign_imb"]] == 1.0
    assert out[0].vwap == pytest.approx(100.03)


def test_crossing_several_boundaries_emits_each_with_zero_return() -> None:
    eng = FeatureEngine(schema_for("spot"))
    book(eng, 10 * S, {100.0: 1.0}, {100.02: 1.0})
    eng.on_deltas(10 * S + 1, [ADD], [BUY], [100.01], [1.0])
    out = eng.on_deltas(15 * S + S // 2, [ADD], [SELL], [100.015], [1.0])
    assert [s.ts_ns // S for s in out] == [11, 12, 13, 14, 15]
    rets = [s.raw[IDX["ret_bp"]] for s in out]
    assert rets == [0.0] * 5  # first sample of the session has no previous mid
    out = eng.on_trade(16 * S, 100.0, 1.0, SELLER)
    assert out[0].raw[IDX["ret_bp"]] == pytest.approx(1e4 * math.log(100.0125 / 100.015))


def test_gap_longer_than_cap_starts_a_new_session_without_stale_samples() -> None:
    eng = FeatureEngine(short_schema("spot", max_gap_intervals=60, min_periods_s=5.0))
    book(eng, 0, {100.0: 1.0}, {100.02: 1.0})
    samples = []
    for k in range(1, 20):
        samples += eng.on_trade(k * S, 100.01, 1.0, BUYER)
    assert samples[-1].ready and samples[-1].session == 0
    assert eng.on_trade(19 * S + 61 * S, 100.01, 1.0, BUYER) == []  # 61 boundaries crossed
    assert eng.session == 1 and eng.resets == 1
    after = eng.on_trade(19 * S + 62 * S, 100.01, 1.0, BUYER)
    assert len(after) == 1 and after[0].session == 1 and not after[0].ready
    assert not after[0].z.any()
    # exactly the cap still emits every sample
    eng2 = FeatureEngine(schema_for("spot", max_gap_intervals=60))
    eng2.on_trade(0, 1.0, 1.0, BUYER)
    assert len(eng2.on_trade(60 * S, 1.0, 1.0, BUYER)) == 60 and eng2.session == 0


# ---- feature values --------------------------------------------------------------------------
def test_book_features_by_hand() -> None:
    eng = FeatureEngine(schema_for("spot", top_n=2))
    book(eng, 0, {100.0: 3.0, 99.99: 1.0, 99.98: 50.0}, {100.02: 1.0, 100.03: 2.0})
    s = eng.on_trade(S, 100.0, 1.0, SELLER)[0]
    mid = 100.01
    micro = (100.0 * 1.0 + 100.02 * 3.0) / 4.0
    assert s.spread_bp == pytest.approx(0.02 / mid * 1e4)
    assert s.raw[IDX["spread_bp"]] == pytest.approx(0.02 / mid * 1e4)
    assert s.raw[IDX["imbalance"]] == pytest.approx((4.0 - 3.0) / 7.0)  # top 2 levels only
    assert s.microprice == pytest.approx(micro)
    assert s.raw[IDX["micro_bp"]] == pytest.approx((micro - mid) / mid * 1e4)


def test_trade_window_features_by_hand() -> None:
    eng = FeatureEngine(schema_for("spot", trade_window_s=2.0))
    book(eng, 0, {100.0: 1.0}, {100.02: 1.0})
    eng.on_trade(S // 2, 100.0, 1.0, BUYER)
    eng.on_trade(S // 2, 100.0, 3.0, SELLER)
    s1 = eng.on_trade(S + 1, 200.0, 1.0, BUYER)[0]
    assert s1.raw[IDX["trade_sign_imb"]] == 0.0
    assert s1.raw[IDX["vw_trade_delta"]] == pytest.approx((100.0 - 300.0) / 400.0)
    s2 = eng.on_trade(2 * S + 1, 1.0, 1.0, SELLER)[0]  # window: buckets of s1 and s2
    assert s2.raw[IDX["trade_sign_imb"]] == pytest.approx((2 - 1) / 3)
    assert s2.raw[IDX["vw_trade_delta"]] == pytest.approx((300.0 - 300.0) / 600.0)
    s3 = eng.on_deltas(3 * S, [UPDATE], [BUY], [100.0], [2.0])[0]  # first bucket left
    assert s3.raw[IDX["trade_sign_imb"]] == pytest.approx(0.0)
    assert s3.raw[IDX["vw_trade_delta"]] == pytest.approx((200.0 - 1.0) / 201.0)
    assert s3.vwap == pytest.approx((100 + 300 + 200 + 1) / 6.0)
    # no trades for a whole window -> 0, never NaN
    out = eng.on_deltas(6 * S, [UPDATE], [BUY], [100.0], [2.0])
    assert out[-1].raw[IDX["trade_sign_imb"]] == 0.0 and out[-1].raw[IDX["vw_trade_delta"]] == 0.0


def test_ofi_sign_follows_queue_changes_at_best() -> None:
    eng = FeatureEngine(schema_for("spot"))
    book(eng, 0, {100.0: 1.0}, {100.02: 1.0})
    eng.on_trade(S, 0.0, 0.0, 0)
    eng.on_deltas(S + 1, [UPDATE], [BUY], [100.0], [5.0])  # bid queue grows
    s = eng.on_trade(2 * S, 0.0, 0.0, 0)[0]
    assert s.raw[IDX["ofi"]] > 0
    eng.on_deltas(2 * S + 1, [UPDATE, UPDATE], [BUY, SELL], [100.0, 100.02], [0.5, 20.0])
    s = eng.on_trade(3 * S, 0.0, 0.0, 0)[0]
    assert s.raw[IDX["ofi"]] < 0


def test_returns_volatility_and_autocorrelation() -> None:
    eng = FeatureEngine(schema_for("spot", rv_window_s=10.0, autocorr_window_s=10.0))
    book(eng, 0, {100.0: 1.0}, {100.02: 1.0})
    out = []
    mids = []
    for k in range(1, 31):  # mid alternates up/down by one tick: negative lag-1 autocorr
        up = k % 2 == 0
        bid, ask = (100.01, 100.03) if up else (100.0, 100.02)
        mids.append(0.5 * (bid + ask))
        book(eng, k * S - S // 2, {bid: 1.0}, {ask: 1.0})
        out += eng.on_trade(k * S + 1, bid, 0.1, BUYER)
    rets = np.array([s.raw[IDX["ret_bp"]] for s in out])
    assert rets[-1] == pytest.approx(1e4 * math.log(mids[-1] / mids[-2]))
    last10 = rets[-10:]
    assert out[-1].realised_vol_bp == pytest.approx(last10.std())
    assert out[-1].raw[IDX["rv_bp"]] == pytest.approx(last10.std())
    assert out[-1].raw[IDX["autocorr_1"]] < -0.8
    assert out[-1].raw[IDX["autocorr_2"]] > 0.6


def test_clear_and_snapshot_reset_the_book() -> None:
    eng = FeatureEngine(schema_for("spot"))
    book(eng, 0, {100.0: 1.0, 99.0: 1.0}, {101.0: 1.0})
    eng.on_deltas(1, [CLEAR], [0], [0.0], [0.0])
    assert eng.bids == {} and eng.asks == {}
    book(eng, 2, {50.0: 2.0}, {50.5: 1.0})
    assert eng.bids == {50.0: 2.0} and eng.asks == {50.5: 1.0}


def test_perp_time_to_funding_and_funding_rate() -> None:
    eng = FeatureEngine(schema_for("perp"))
    t0 = 1_723_161_600 * S  # 2024-08-09 00:00:00 UTC, a funding time
    book(eng, t0 - 10 * S, {100.0: 1.0}, {100.02: 1.0})
    eng.on_funding(t0 - 9 * S + 1, 0.0001)
    out = eng.on_trade(t0 + 3601 * S, 100.0, 1.0, BUYER)  # > cap: new session
    assert out == []
    s = eng.on_trade(t0 + 3602 * S, 100.0, 1.0, BUYER)[0]
    assert s.ts_ns == t0 + 3602 * S
    assert s.raw[IDX["time_to_funding"]] == pytest.approx((8 * 3600 - 3602) / (8 * 3600))
    assert s.raw[IDX["funding_rate_bp"]] == pytest.approx(1.0)
    assert len(s.raw) == 12


# ---- robustness ------------------------------------------------------------------------------
def test_degenerate_books_hold_values_and_never_emit_nan() -> None:
    eng = FeatureEngine(schema_for("spot", min_periods_s=2.0))
    out = eng.on_trade(0, 100.0, 1.0, BUYER)
    out += eng.on_trade(S, 100.0, 1.0, BUYER)  # empty book
    assert out[0].book_ok is False and out[0].mid == 0.0
    book(eng, S + 1, {100.0: 1.0}, {100.02: 1.0})
    out += eng.on_trade(2 * S, 100.0, 1.0, BUYER)
    assert out[-1].book_ok and out[-1].mid == pytest.approx(100.01)
    book(eng, 2 * S + 1, {100.0: 1.0}, {})  # one-sided
    out += eng.on_trade(3 * S, 100.0, 1.0, BUYER)
    assert not out[-1].book_ok and out[-1].mid == pytest.approx(100.01)
    book(eng, 3 * S + 1, {101.0: 1.0}, {100.0: 1.0})  # crossed
    out += eng.on_trade(4 * S, 100.0, 1.0, BUYER)
    assert not out[-1].book_ok and out[-1].raw[IDX["ret_bp"]] == 0.0
    book(eng, 4 * S + 1, {100.0: 0.0}, {100.02: -1.0})  # zero / negative sizes are removals
    out += eng.on_trade(5 * S, 100.0, 1.0, BUYER)
    assert eng.bids == {} and eng.asks == {}
    for s in out:
        assert np.isfinite(s.raw).all() and np.isfinite(s.z).all()
        assert all(math.isfinite(v) for v in (s.mid, s.vwap, s.microprice, s.spread_bp))
    assert eng.nonfinite == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_garbage_streams_stay_finite_and_bounded(seed: int) -> None:
    d, t = random_stream(seed, seconds=200, garbage=True)
    eng = FeatureEngine(schema_for("perp", min_periods_s=30.0))
    cols = samples_to_columns(eng.run(d, t), 12)
    assert eng._bid_px == sorted(eng.bids) and eng._ask_px == sorted(eng.asks)
    assert len(cols["ts"]) > 150
    assert np.isfinite(cols["raw"]).all() and np.isfinite(cols["z"]).all()
    assert np.abs(cols["z"]).max() <= 10.0
    for name in ("imbalance", "trade_sign_imb", "vw_trade_delta", "autocorr_1", "autocorr_2"):
        assert np.abs(cols["raw"][:, IDX[name]]).max() <= 1.0 + 1e-12, name
    for name in ("mid", "vwap", "microprice", "spread_bp", "best_bid", "best_ask"):
        assert np.isfinite(cols[name]).all()


# ---- standardisation -------------------------------------------------------------------------
def test_z_uses_previous_samples_only_over_the_rolling_window() -> None:
    schema = short_schema("spot", standardise_window_s=40.0, min_periods_s=30.0)
    d, t = random_stream(7, seconds=150, jitter_ns=0)
    cols = samples_to_columns(FeatureEngine(schema).run(d, t), 10)
    raw, z, ready = cols["raw"], cols["z"], cols["ready"]
    assert schema.warmup_samples == 30
    np.testing.assert_array_equal(ready, np.arange(len(raw)) >= 30)
    assert not z[~ready].any()
    for k in np.flatnonzero(ready):
        prev = raw[max(0, k - 40) : k]
        mean, std = prev.mean(axis=0), np.maximum(prev.std(axis=0), schema.std_floor)
        expect = np.clip((raw[k] - mean) / std, -10, 10)
        np.testing.assert_allclose(z[k], expect, rtol=1e-7, atol=1e-7)
    assert np.abs(z[ready]).mean() > 0.1  # informative, not all clipped to zero


# ---- batch vs per-message ----------------------------------------------------------------------
@pytest.mark.parametrize("seed", [11, 12])
def test_batch_run_equals_per_message_delivery(seed: int) -> None:
    d, t = random_stream(seed, seconds=240, jitter_ns=400_000_000)
    schema = schema_for("perp", min_periods_s=60.0)
    a = samples_to_columns(FeatureEngine(schema).run(d, t), 12)
    b = samples_to_columns(deliver(FeatureEngine(schema), d, t), 12)
    assert len(a["ts"]) == len(b["ts"]) > 200
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_batch_run_can_continue_across_calls() -> None:
    d, t = random_stream(5, seconds=120, jitter_ns=0)
    schema = schema_for("spot", min_periods_s=20.0)
    whole = samples_to_columns(FeatureEngine(schema).run(d, t), 10)
    eng = FeatureEngine(schema)
    cut_d = int(np.flatnonzero(d.flags & F_LAST)[len(d) // 40]) + 1
    cut_ts = int(d.ts_init[cut_d - 1])
    first_t = t.ts_init <= cut_ts
    parts = eng.run(d.take(slice(0, cut_d)), t.take(first_t))
    parts += eng.run(d.take(slice(cut_d, None)), t.take(~first_t))
    split = samples_to_columns(parts, 10)
    for k in whole:
        np.testing.assert_array_equal(whole[k], split[k], err_msg=k)


def test_future_events_do_not_change_past_samples() -> None:
    d, t = random_stream(21, seconds=200)
    schema = schema_for("spot", min_periods_s=30.0)
    base = samples_to_columns(FeatureEngine(schema).run(d, t), 10)
    cut = int(base["ts"][120])
    rng = np.random.default_rng(0)
    late_d, late_t = d.ts_event >= cut, t.ts_event >= cut
    d2 = DeltaColumns(**{n: getattr(d, n).copy() for n in d.names()})
    t2 = TradeColumns(**{n: getattr(t, n).copy() for n in t.names()})
    d2.size[late_d] = rng.exponential(5.0, late_d.sum())
    t2.price[late_t] *= 1.01
    t2.aggressor[late_t] = 3 - t2.aggressor[late_t]
    pert = samples_to_columns(FeatureEngine(schema).run(d2, t2), 10)
    upto = base["ts"] <= cut
    assert upto.sum() == 121
    for k in base:
        np.testing.assert_array_equal(base[k][upto], pert[k][: upto.sum()], err_msg=k)
    assert not np.array_equal(base["raw"][~upto], pert["raw"][~upto])


def test_batch_run_handles_empty_and_one_sided_inputs() -> None:
    eng = FeatureEngine(schema_for("spot"))
    assert eng.run(DeltaColumns.empty(), TradeColumns.empty()) == []
    _, t = random_stream(3, seconds=30)
    out = eng.run(DeltaColumns.empty(), t)  # trades only: samples with an empty book
    assert len(out) >= 25 and not any(s.book_ok for s in out)
    d, _ = random_stream(3, seconds=30)
    unfinished = d.take(slice(0, len(d) - 1))  # the last message never gets its F_LAST
    a = FeatureEngine(schema_for("spot"))
    b = FeatureEngine(schema_for("spot"))
    a.run(unfinished, TradeColumns.empty())
    b.run(d.take(np.arange(len(d)) < np.flatnonzero(d.flags & F_LAST)[-2] + 1), t.take(slice(0, 0)))
    assert a.bids == b.bids and a.asks == b.asks
