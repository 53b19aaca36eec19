"""``nhmm rollup`` on a local directory and on a real S3-compatible server (moto) on loopback:
round trip through ``pyarrow.dataset`` and DuckDB, idempotent reruns, and a rollup SIGKILLed
mid-write (a real subprocess) leaving no partial partition."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from node.run_dir import REASON_CODES
from ops._run_events import load_events
from ops.rollup import MANIFESTS
from ops.rollup import PART
from ops.rollup import STAGING
from ops.rollup import TABLES
from ops.rollup import RollupConfig
from ops.rollup import partition_path
from ops.rollup import rollup
from tests.run_dir_setup import DAYS
from tests.run_dir_setup import ROWS_PER_DAY
from tests.run_dir_setup import make_spec
from tests.run_dir_setup import write_run
from tests.s3_setup import moto_s3
from tests.s3_setup import new_bucket
from tests.s3_setup import s3_env
from training.cli import main

REPO = Path(__file__).resolve().parents[2]
D1, D2 = (datetime.date.fromisoformat(d) for d in DAYS)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    with moto_s3() as endpoint:
        yield endpoint


@dataclass(frozen=True)
class Dest:
    to: str
    fs: pafs.FileSystem
    base: str
    env: dict[str, str]

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def files(self, under: str = "") -> list[str]:
        sel = pafs.FileSelector(f"{self.base}/{under}".rstrip("/"), recursive=True,
                                allow_not_found=True)  # fmt: skip
        return sorted(i.path for i in self.fs.get_file_info(sel) if i.type == pafs.FileType.File)

    def read(self, path: str) -> bytes:
        with self.fs.open_input_file(path) as f:
            return f.read()

    def dataset(self, table: str) -> pads.Dataset:
        return pads.dataset(f"{self.base}/{table}", filesystem=self.fs, format="parquet",
                            partitioning="hive")  # fmt: skip

    def manifest(self, symbol: str, day: datetime.date) -> dict | None:
        path = f"{self.base}/{MANIFESTS}/symbol={symbol}/date={day}.json"
        return json.loads(self.read(path)) if self.exists(path) else None


@pytest.fixture(params=["local", "s3"])
def dest(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dest:
    """An empty destination: a local directory or ``s3://<new bucket>/rollups`` on moto."""
    if request.param == "local":
        return Dest(
            str(tmp_path / "rollups"), pafs.LocalFileSystem(), str(tmp_path / "rollups"), {}
        )
    endpoint = request.getfixturevalue("s3_server")
    env = s3_env(endpoint)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    fs, bucket = new_bucket(endpoint, "rollup")
    return Dest(f"s3://{bucket}/rollups", fs, f"{bucket}/rollups", env)


@pytest.fixture
def two_day_run(tmp_path: Path) -> Path:
    """The hand-built RUN_DIR: two days of 600 samples (no exits file: an older run)."""
    return write_run(make_spec(), tmp_path / "hand")


def test_round_trip_of_a_real_backtest(backtest_run: Path, dest: Dest) -> None:
    ev = load_events(backtest_run)
    day = datetime.date.fromisoformat(ev.timeline.column("day")[0].as_py())
    (manifest,) = rollup(day, [backtest_run], dest.to)
    guard = json.loads((backtest_run / "guardrails.json").read_text())
    back = {t: dest.dataset(t).to_table() for t in TABLES}
    for t, table in back.items():
        assert set(table.column("symbol").to_pylist()) == {"BTCUSDT"}, t
        assert set(table.column("date").to_pylist()) == {day.isoformat()}, t
        assert set(table.column("run").to_pylist()) <= {backtest_run.name}, t
        assert manifest["tables"][t]["rows"] == table.num_rows
        data = dest.read(manifest["tables"][t]["path"])
        assert hashlib.sha256(data).hexdigest() == manifest["tables"][t]["sha256"]
    tl = back["timeline"]
    original = pq.read_table(backtest_run / "timeline.parquet")
    assert tl.num_rows == original.num_rows > 1000  # a one-day backtest: all of it
    for col in ("ts", "state", "verdict", "equity", "position", "pnl", "posterior"):
        assert tl.column(col).to_pylist() == original.column(col).to_pylist(), col
    entries = pq.read_table(backtest_run / "entries.parquet")
    blocks = pq.read_table(backtest_run / "blocks.parquet")
    exits = pq.read_table(backtest_run / "exits.parquet")
    assert back["decisions"].num_rows == entries.num_rows + blocks.num_rows + exits.num_rows
    kinds = back["decisions"].column("kind").to_pylist()
    assert kinds.count("block") == blocks.num_rows == sum(guard[r] for r in REASON_CODES)
    n_orders = sum(entries.column("submitted").to_pylist()) + exits.num_rows  # trading run
    assert back["orders"].num_rows == n_orders > 0
    fills = pq.read_table(backtest_run / "fills.parquet").to_pylist()
    assert back["fills"].num_rows == len(fills) > 0
    fees = sum(float(f["commission"].split()[0]) for f in fills)
    assert sum(back["fills"].column("commission").to_pylist()) == pytest.approx(fees)
    counts = dict(zip(back["guardrails"].column("verdict").to_pylist(),
                      back["guardrails"].column("count").to_pylist(), strict=True))  # fmt: skip
    for code in (*REASON_CODES, "OK"):
        assert counts[code] == guard[code], code
    assert sum(counts.values()) == tl.num_rows
    assert not dest.exists(f"{dest.base}/{STAGING}/symbol=BTCUSDT/date={day}")


def test_days_are_partitions_and_a_rerun_replaces_only_its_day(
    two_day_run: Path, dest: Dest, tmp_path: Path
) -> None:
    rollup(D1, [two_day_run], dest.to)
    rollup(D2, [two_day_run], dest.to)
    tl = dest.dataset("timeline").to_table()
    per_day = {d: tl.column("date").to_pylist().count(d) for d in DAYS}
    assert per_day == {d: ROWS_PER_DAY for d in DAYS}
    files = {p: dest.read(p) for p in dest.files() if f"/{MANIFESTS}/" not in p}
    assert len(files) == 2 * len(TABLES)  # one file per table and day
    stray = f"{partition_path(dest.base, 'timeline', 'BTCUSDT', D1)}/part-old.parquet"
    with dest.fs.open_output_stream(stray) as f:  # a file an older layout left
        f.write(b"PAR1 not really")
    rollup(D1, [two_day_run], dest.to)  # same runs: byte-identical files, the stray one gone
    assert {p: dest.read(p) for p in dest.files() if f"/{MANIFESTS}/" not in p} == files
    other = write_run(make_spec(seed=11), tmp_path / "other")  # new content for day 1 only
    rollup(D1, [other], dest.to)
    tl = dest.dataset("timeline").to_table()
    assert tl.num_rows == 2 * ROWS_PER_DAY  # replaced, not appended
    new = pq.read_table(other / "timeline.parquet")
    day1 = [r for r, d in zip(tl.column("features").to_pylist(), tl.column("date").to_pylist(),
                              strict=True) if d == DAYS[0]]  # fmt: skip
    assert day1 == new.column("features").to_pylist()[:ROWS_PER_DAY]
    d2 = partition_path(dest.base, "timeline", "BTCUSDT", D2) + "/" + PART
    assert dest.read(d2) == files[d2]  # the other day untouched


def test_duckdb_reads_the_hive_layout(two_day_run: Path, tmp_path: Path) -> None:
    import duckdb

    out = tmp_path / "rollups"
    for day in (D1, D2):
        rollup(day, [two_day_run], str(out))
    con = duckdb.connect()

    def q(sql: str) -> list[tuple]:
        return con.execute(sql.format(root=out)).fetchall()

    rows = q("SELECT symbol, date, typeof(date), count(*) FROM read_parquet("
             "'{root}/timeline/*/*/*.parquet', hive_partitioning = true) GROUP BY ALL ORDER BY 2")  # fmt: skip
    assert rows == [("BTCUSDT", D1, "DATE", ROWS_PER_DAY), ("BTCUSDT", D2, "DATE", ROWS_PER_DAY)]
    guard = q("SELECT date, sum(count) FROM read_parquet('{root}/guardrails/**/*.parquet', "
              "hive_partitioning = true) GROUP BY date ORDER BY date")  # fmt: skip
    assert guard == [(D1, ROWS_PER_DAY), (D2, ROWS_PER_DAY)]
    blocks = q("SELECT verdict, count(*) FROM read_parquet('{root}/decisions/*/*/*.parquet', "
               "hive_partitioning = true) WHERE kind = 'block' GROUP BY verdict ORDER BY 1")  # fmt: skip
    spec = make_spec()
    want = sorted((r, spec["blocks"]["reason"].count(r)) for r in set(spec["blocks"]["reason"]))
    assert blocks == want


_KILL_SCRIPT = textwrap.dedent("""
    import datetime, sys, time
    from pathlib import Path
    from ops.rollup import RollupConfig, rollup

    run, to, day, kill_at, marker = sys.argv[1:]

    def hook(step):
        if step == kill_at:
            Path(marker).write_text(step)
            time.sleep(120)  # the test SIGKILLs us here

    rollup(datetime.date.fromisoformat(day), [run], to, RollupConfig(row_group_rows=50), hook)
""")


def _rollup_killed_at(run: Path, dest: Dest, day: datetime.date, step: str, tmp: Path) -> None:
    """Run a rollup in a real subprocess and SIGKILL it when it reaches ``step``."""
    marker = tmp / f"marker-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, **dest.env, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(run), dest.to, str(day),
                             step, str(marker)], env=env, cwd=REPO)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, f"rollup exited ({proc.returncode}) before {step!r}"
            assert time.monotonic() < deadline, f"rollup never reached {step!r}"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _day_files(dest: Dest, day: datetime.date) -> dict[str, bytes]:
    return {p: dest.read(p) for t in TABLES
            for p in dest.files(f"{t}/symbol=BTCUSDT/date={day}")}  # fmt: skip


def test_killed_mid_write_leaves_no_partial_partition(
    two_day_run: Path, dest: Dest, tmp_path: Path
) -> None:
    # first rollup of the day killed inside the timeline file (row group 5 of 12 written)
    _rollup_killed_at(two_day_run, dest, D1, "stage timeline 5", tmp_path)
    assert _day_files(dest, D1) == {}  # nothing visible: no partition at all
    assert not dest.exists(partition_path(dest.base, "timeline", "BTCUSDT", D1))
    assert dest.manifest("BTCUSDT", D1) is None
    staged = dest.files(STAGING)
    if isinstance(dest.fs, pafs.LocalFileSystem):  # the half-written file, out of readers' way
        (partial,) = [p for p in staged if p.endswith("/timeline.parquet")]
        with pytest.raises(pa.ArrowInvalid, match=r"(?i)parquet|footer|magic"):
            pq.ParquetFile(pa.BufferReader(dest.read(partial)))
    else:  # S3 never published the unfinished upload
        assert staged == []
    (manifest,) = rollup(D1, [two_day_run], dest.to)  # a rerun succeeds and cleans up
    assert dest.files(STAGING) == []
    assert dest.dataset("timeline").to_table().num_rows == ROWS_PER_DAY
    old = _day_files(dest, D1)
    # a rerun with other runs killed mid-write: the old day stays whole, manifest and all
    other = write_run(make_spec(seed=11), tmp_path / "other")
    _rollup_killed_at(other, dest, D1, "stage timeline 5", tmp_path)
    assert _day_files(dest, D1) == old
    assert dest.manifest("BTCUSDT", D1)["rollup_id"] == manifest["rollup_id"]


def test_killed_mid_swap_leaves_whole_files_and_no_manifest(
    two_day_run: Path, dest: Dest, tmp_path: Path
) -> None:
    rollup(D1, [two_day_run], dest.to)
    old = _day_files(dest, D1)
    other = write_run(make_spec(seed=11), tmp_path / "other")
    _rollup_killed_at(other, dest, D1, "swap decisions", tmp_path)  # timeline, decisions moved
    assert dest.manifest("BTCUSDT", D1) is None  # the day is marked incomplete
    now = _day_files(dest, D1)
    assert len(now) == len(TABLES)  # one whole file per table: old or new, never both or half
    for path, data in now.items():
        assert pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows > 0  # a whole file
        table = path.split(f"{dest.base}/")[1].split("/")[0]
        assert (data == old[path]) is (table not in ("timeline", "decisions")), table
    rollup(D1, [other], dest.to)
    (manifest,) = [dest.manifest("BTCUSDT", D1)]
    assert manifest is not None and manifest["runs"] == [str(other)]
    for t in TABLES:
        data = dest.read(manifest["tables"][t]["path"])
        assert hashlib.sha256(data).hexdigest() == manifest["tables"][t]["sha256"]
    feats = dest.dataset("timeline").to_table().column("features").to_pylist()
    assert np.allclose(feats, pq.read_table(other / "timeline.parquet")
                       .column("features").to_pylist()[:ROWS_PER_DAY])  # fmt: skip


def test_cli_state_dir_runs_and_errors(two_day_run: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    for name, seed in (("a", 3), ("b", 5)):
        write_run(make_spec(seed=seed), state / "runs" / name)
    out = tmp_path / "out"
    runner = CliRunner()
    res = runner.invoke(main, ["rollup", "--date", DAYS[0], "--state-dir", str(state),
                               "--to", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert f"BTCUSDT {DAYS[0]}: timeline {2 * ROWS_PER_DAY}" in res.output
    tl = pads.dataset(out / "timeline", partitioning="hive").to_table()
    assert sorted(set(tl.column("run").to_pylist())) == ["a", "b"]
    ts = tl.column("ts").to_numpy()
    assert (np.diff(ts) >= 0).all()  # the runs' rows merged in time order
    cases = [
        (["--date", "2030-01-01", "--run", str(two_day_run), "--to", str(out)], "no sample"),
        (["--date", DAYS[0], "--run", str(two_day_run), "--state-dir", str(state), "--to",
          str(out)], "not both"),
        (["--date", DAYS[0], "--to", str(out)], "not both"),
        (["--date", DAYS[0], "--run", str(two_day_run), "--to", "ftp://host/x"], "--to"),
        (["--date", DAYS[0], "--state-dir", str(tmp_path / "out"), "--to", str(out)], "no RUN_DIR"),
    ]  # fmt: skip
    for args, message in cases:
        res = runner.invoke(main, ["rollup", *args])
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output, (args, res.output)
        assert "Traceback" not in res.output


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="row_group_rows"):
        RollupConfig(row_group_rows=0)
