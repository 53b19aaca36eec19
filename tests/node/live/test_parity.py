"""The parity report's bookkeeping on hand-made timelines: every sample either run has is
counted once, and each difference gets the cause the situation calls for."""

from __future__ import annotations

import numpy as np

from node.live.parity import CAUSES
from node.live.parity import Samples
from node.live.parity import compare

S = 10**9


def _samples(ts: list[int], states: list[int], actions: str, status: str | None = None,
             features: np.ndarray | None = None) -> Samples:  # fmt: skip
    n = len(ts)
    acts = {"b": "buy", "s": "sell", "f": "flat"}
    return Samples(
        np.asarray(ts, np.int64) * S,
        np.asarray(states),
        np.array([acts[a] for a in actions], dtype=object),
        np.array(["ok" if c == "o" else "error" for c in (status or "o" * n)], dtype=object),
        np.zeros((n, 3)) if features is None else features,
    )


def test_identical_runs_agree_everywhere() -> None:
    run = _samples([1, 2, 3], [0, 1, 2], "bsf")
    rep = compare(run, run, 0)
    assert (rep.samples, rep.pairs, rep.agree, rep.fraction, rep.differences) == (3, 3, 3, 1.0, ())


def test_unpaired_samples_are_warm_up_end_of_run_or_missing() -> None:
    bt = _samples([1, 2, 3, 4, 5, 6], [0] * 6, "ffffff")
    live = _samples([2, 3, 5], [0] * 3, "fff")
    rep = compare(live, bt, 0)
    assert [(d.ts // S, d.cause) for d in rep.differences] == [
        (1, "warm-up"), (4, "missing sample"), (6, "end of run")
    ]  # fmt: skip
    assert rep.samples == 6 and rep.agree == 3 and rep.differences[0].live is None


def test_latency_block_then_the_filter_carries_it() -> None:
    bt = _samples([1, 2, 3, 4], [0, 0, 1, 1], "bbss")
    live = _samples([1, 2, 3, 4], [0, -1, 0, 1], "bfbs", status="oeoo")
    rep = compare(live, bt, 0)
    assert [(d.ts // S, d.cause) for d in rep.differences] == [
        (2, "latency block"), (3, "after latency block")
    ]  # fmt: skip


def test_a_feature_divergence_is_one_episode_with_the_cause_of_its_onset() -> None:
    feats = np.zeros((5, 3))
    bt = _samples([1, 2, 3, 4, 5], [0, 0, 0, 0, 0], "bbbbb")
    moved = feats.copy()
    moved[2:, 0] = 0.3  # diverges at t=3 and stays (rolling windows remember)
    live = _samples([1, 2, 3, 4, 5], [0, 0, 1, 0, 1], "bbsbs", features=moved)
    gap = compare(live, bt, 0, resync_ts=[4 * S])
    assert {d.cause for d in gap.differences} == {"book resync"}
    assert gap.episodes == ({"onset": 3 * S, "cause": "book resync", "samples": 3},)
    assert {d.cause for d in compare(live, bt, 0, usdm=True).differences} == {"depth timestamp"}
    assert {d.cause for d in compare(live, bt, 0).differences} == {"unexplained"}
    other = compare(live, bt, 0, versions_differ=True)
    assert {d.cause for d in other.differences} == {"model version"}
    assert other.differences[0].feature_diff == 0.3


def test_every_cause_is_explained_in_the_markdown() -> None:
    bt = _samples([1, 2, 3], [0, 0, 0], "fff")
    live = _samples([2, 3], [0, -1], "ff", status="oe")
    rep = compare(live, bt, 0)
    md = rep.markdown()
    for cause in rep.by_cause():
        assert f"| {cause} | 1 | {CAUSES[cause]} |" in md
    assert "1 of 3 samples (33.33%)" in md
