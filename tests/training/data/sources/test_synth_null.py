"""``--preset null``: the realistic regimes' switching with nothing that predicts a move's sign."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner

from training.cli.data import synth as cli
from training.data.catalog import MarketCatalog
from training.data.sources.synth import preset
from training.data.sources.synth import synth
from training.features.offline import extract_features

#: |lag-k autocorrelation| of n 1-minute returns under "no signal" is ~N(0, 1/n); 4 standard
#: errors for each of 5 lags: a false alarm has probability < 5 x 6.3e-5 (Bonferroni).
Z_BOUND = 4.0


def test_null_preset_has_regimes_but_no_sign_information(tmp_path: Path) -> None:
    cfg = preset("null", market="usdm", days=1, seed=11, day_seconds=43_200)
    assert all(r.drift_bp == r.sign_bias == r.depth_tilt == r.noise_bp == 0.0 for r in cfg.regimes)
    synth(cfg, tmp_path)
    catalog = MarketCatalog(tmp_path)
    sd = catalog.symbol_days()[0]
    t = extract_features(catalog, sd.instrument_id, sd.day)
    ts, mid = t.column("ts").to_numpy(), t.column("mid").to_numpy()
    regime = t.column("regime").to_numpy()
    ok = t.column("book_ok").to_numpy(zero_copy_only=False).astype(bool) & (mid > 0)
    minute = ts // 60_000_000_000
    last = np.flatnonzero(ok & np.r_[minute[1:] != minute[:-1], True])
    r = np.diff(np.log(mid[last]))
    n = len(r)
    assert n > 700
    x = r - r.mean()
    acf = [float((x[k:] * x[:-k]).sum() / (x * x).sum()) for k in range(1, 6)]
    bound = Z_BOUND / np.sqrt(n)
    assert max(abs(a) for a in acf) < bound, (acf, bound)
    # the regimes are still there: 1-minute volatility in volatile minutes >> calm minutes
    reg = regime[last[1:]]
    vol = {k: float(r[reg == k].std()) for k in np.unique(reg)}
    assert vol[2] > 3.0 * vol[0], vol


def test_cli_offers_the_null_preset_and_the_usdm_market(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["--preset", "null", "--market", "usdm", "--day-seconds", "60",
                                   "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert [sd.instrument_id for sd in MarketCatalog(tmp_path).symbol_days()] == [
        "BTCUSDT-PERP.BINANCE"]  # fmt: skip
