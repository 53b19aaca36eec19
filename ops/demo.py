"""``make demo``: the whole system on a small synthetic market and the real recording.

Every step is echoed as the command a user would type, then run: synthesise 3 symbol-days and a
held-out 4th (its own seed and length) -> ``nhmm sweep`` (embedded Ray Tune, the last day held
out: ``--test-days 1``) -> promote the winner -> ``serve run`` of the shipped Serve config in
the background (its own port, checked on ``/healthz``) -> ``nhmm backtest --serve`` on the
held-out day -> ``nhmm acceptance`` (exit 1 = a check failed: shown, the demo goes on) and
``nhmm report`` -> ``python node/run.py --replay`` of the real recording in
``../shared/data/binance-ws`` through the loopback venue, asking Serve -> ``nhmm rollup`` of
that node run -> Serve and its Ray stopped, and a check that no process the demo started is
left. It ends with a table of the numbers and of where every output is.

``OUT/commands.sh`` is the transcript (every command as echoed), ``OUT/logs/`` every step's
output (also shown as it runs, but the node's and Serve's), ``OUT/demo.json`` the step
timings and figures (``bench/bench_demo.py`` reads them). Exit 0, or 1 naming the failed step
or the processes left behind.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn
from rich.progress import Progress
from rich.progress import TextColumn
from rich.progress import TimeElapsedColumn

from ops._demo_table import final_table
from ops._procs import ProcessWatch
from ops._serve_proc import ServeProcess
from ops._serve_proc import write_serve_config
from training.errors import NhmmError
from training.errors import UnavailableError

__all__ = ["RECORDINGS", "SIZE_OPTIONS", "DemoConfig", "DemoError", "main", "run_demo"]

REPO = Path(__file__).resolve().parents[1]
SHARED_WS = REPO.parent / "shared" / "data" / "binance-ws"
#: The real spot recording, one stream over midnight (23:54-00:05 UTC).
RECORDINGS = (SHARED_WS / "spot_btcusdt_20240808.gz", SHARED_WS / "spot_btcusdt_20240809.gz")
RECORDING_S = 700.0  # its span, for the progress bar
SYMBOL = "BTCUSDT"
START = datetime.date(2024, 1, 1)
N_DAYS = 4  # 3 to search and train, 1 held out
#: Options whose values only size the demo (a README command may show other values).
SIZE_OPTIONS = ("--day-seconds", "--num-samples", "--speed")
#: What Ray prints when its raylet did not register within its fixed 30 s.
RAY_SLOW_START = "timed out during startup"


class DemoError(NhmmError):
    """A demo step failed, Serve never became healthy, or a process was left behind."""


@dataclass(frozen=True)
class DemoConfig:
    """The demo's size: ``day_seconds`` per synthetic search day, ``held_out_seconds`` of the
    held-out day (``None``: ``day_seconds``; the backtest asks Serve once per second of it),
    Tune ``num_samples``, replay ``speed``; ``serve_timeout_s`` for ``/healthz``."""

    out: Path = Path("demo_run")
    day_seconds: int = 3 * 3600
    held_out_seconds: int | None = None
    num_samples: int = 4
    seed: int = 7
    speed: float = 10.0
    serve_timeout_s: float = 300.0
    recordings: tuple[Path, ...] = RECORDINGS


@dataclass
class Step:
    """One executed step: its title, the command as typed, exit code and wall seconds."""

    title: str
    command: str
    exit_code: int | None = None
    seconds: float = 0.0


def shown(path: Path | str) -> str:
    """``path`` as a user at the repo root types it (absolute when outside the repo's parent).

    >>> shown(REPO / "demo_run" / "catalog"), shown(SHARED_WS / "x.gz"), shown("/tmp/x")
    ('demo_run/catalog', '../shared/data/binance-ws/x.gz', '/tmp/x')
    """
    path = Path(path).resolve()
    rel = os.path.relpath(path, REPO)
    return str(path) if rel.startswith(os.path.join("..", "..")) else rel


@dataclass
class _Demo:
    cfg: DemoConfig
    console: Console
    env: dict[str, str]
    watch: ProcessWatch
    transcript: Path
    logs: Path
    steps: list[Step] = field(default_factory=list)
    serve: ServeProcess | None = None
    t0: float = field(default_factory=time.perf_counter)

    def header(self, title: str, numbered: bool = True) -> None:
        n = f"step {len(self.steps) + 1}: " if numbered else ""
        elapsed = time.perf_counter() - self.t0
        self.console.rule(f"[bold]{n}{title}[/bold]  ({elapsed:.0f} s elapsed)")

    def echo(self, command: str, note: str | None = None) -> None:
        if note:
            self.console.print(f"# {note}", style="dim", markup=False, highlight=False)
        self.console.print(
            f"$ {command}", style="bold cyan", markup=False, highlight=False, soft_wrap=True
        )  # one line: copy-pasteable
        with self.transcript.open("a") as f:
            f.write(command + "\n")

    def run(self, title: str, user: list[str], argv: list[str], *, note: str | None = None,
            ok: tuple[int, ...] = (0,), quiet: bool = False,
            expect_s: float | None = None) -> int:  # fmt: skip
        """Echo ``user``, run ``argv``, its output in ``OUT/logs/<step>.log`` and on the
        terminal (``quiet``: only in the log, behind a progress bar of ``expect_s``). A Ray
        that did not start in time (a busy machine) is tried once more; any other exit code
        outside ``ok`` stops the demo."""
        self.header(title)
        n = len(self.steps) + 1
        step = Step(title, shlex.join(user))
        log = self.logs / f"{n:02d}-{argv[3] if argv[1] == '-m' else Path(argv[1]).stem}.log"
        self.echo(step.command, note)
        t0 = time.perf_counter()
        for attempt in (1, 2):
            code = self._tee(argv, log, title, None if not quiet else (expect_s or 60.0))
            if code == 0 or attempt == 2 or RAY_SLOW_START not in _tail(log, 60):
                break
            self.echo(step.command, "Ray did not start within its 30 s (a busy machine): once more")
        step.exit_code, step.seconds = code, time.perf_counter() - t0
        self.steps.append(step)
        self.console.print(f"  (exit {code}, {step.seconds:.1f} s; log {shown(log)})",
                           markup=False, highlight=False)  # fmt: skip
        if code not in ok:
            raise DemoError(f"step {title!r} failed: `{step.command}` exited {code}; "
                            f"{shown(log)} ends:\n{_tail(log, 20)}")  # fmt: skip
        return code

    def _tee(self, argv: list[str], log: Path, title: str, bar_s: float | None) -> int:
        """Run ``argv``; its output to ``log`` and (without ``bar_s``) to the terminal."""
        proc = subprocess.Popen(argv, env=self.env, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)  # fmt: skip
        assert proc.stdout is not None
        terminal = None if bar_s is not None else sys.stdout.buffer

        def copy() -> None:
            with log.open("wb") as f:
                for chunk in iter(lambda: proc.stdout.read1(65536), b""):  # type: ignore[union-attr]
                    f.write(chunk)
                    if terminal is not None:
                        terminal.write(chunk)
                        terminal.flush()

        reader = threading.Thread(target=copy, daemon=True)
        reader.start()
        if bar_s is None:
            while proc.poll() is None:
                self.watch.scan([proc.pid])
                time.sleep(0.5)
        else:
            columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
            with Progress(*columns, console=self.console, transient=True) as bar:
                task = bar.add_task(f"{title} (about {bar_s:.0f} s)", total=bar_s)
                t0 = time.perf_counter()
                while proc.poll() is None:
                    self.watch.scan([proc.pid])
                    bar.update(task, completed=min(time.perf_counter() - t0, bar_s * 0.99))
                    time.sleep(0.5)
        reader.join()
        return proc.returncode

    def nhmm(self, title: str, *args: str, **kw: Any) -> int:
        return self.run(title, ["nhmm", *args], [sys.executable, "-m", "training.cli", *args], **kw)


def _tail(path: Path, n: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def run_demo(cfg: DemoConfig, console: Console | None = None) -> dict[str, Any]:
    """Run every step; returns what ``OUT/demo.json`` holds (steps, figures, outputs)."""
    console = console or Console(highlight=False)
    out = cfg.out.resolve()
    if out.exists():
        if any(out.iterdir()) and not (out / "commands.sh").is_file():
            raise DemoError(f"{out} exists and is not a demo's output: choose another --out")
        shutil.rmtree(out)  # the previous demo's
    (out / "logs").mkdir(parents=True)
    ray_tmp = Path(tempfile.mkdtemp(prefix="nhmm-demo-", dir="/tmp"))  # short: Ray's sockets
    registry = out / "model_store"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(NHMM_REGISTRY=str(registry), RAY_TMPDIR=str(ray_tmp))
    demo = _Demo(
        cfg, console, env, ProcessWatch(marker=str(ray_tmp)), out / "commands.sh", out / "logs"
    )
    demo.transcript.write_text("")
    result: dict[str, Any] = {}
    try:
        demo.header("environment", numbered=False)
        if "RAY_ADDRESS" in os.environ:
            demo.echo("unset RAY_ADDRESS", "the demo's Ray is embedded and local")
        where = shown(registry)
        where = where if Path(where).is_absolute() else f'"$PWD/{where}"'
        demo.echo(f"export NHMM_REGISTRY={where}", "the model registry every command uses")
        demo.echo(f"export RAY_TMPDIR={ray_tmp}", "this demo's own Ray instances (and the "
                  "process check's marker)")  # fmt: skip
        result = _steps(demo, out)
    finally:
        _stop(demo)
        left = demo.watch.alive()
        if left:
            demo.watch.kill(left)
            console.print("[bold red]left behind (now killed):[/bold red] "
                          + "; ".join(p.describe() for p in left), markup=True)  # fmt: skip
    if left:
        raise DemoError("processes left behind (now killed): "
                        + "; ".join(p.describe() for p in left))  # fmt: skip
    shutil.rmtree(ray_tmp, ignore_errors=True)
    result["processes_checked"] = len(demo.watch.seen)
    result["steps"] = [vars(s) for s in demo.steps]
    result["wall_s"] = time.perf_counter() - demo.t0
    (out / "demo.json").write_text(json.dumps(result, indent=2, default=str))
    console.print(final_table(result))
    return result


def _stop(demo: _Demo) -> None:
    demo.header("stop Serve and its Ray; check that nothing is left", numbered=False)
    serve = demo.serve
    if serve is not None:
        demo.echo(f"kill -INT {serve.pid}", "Ctrl-C to `serve run`: Serve, then its Ray, shut down")
        t0 = time.perf_counter()
        code = serve.stop()
        demo.steps.append(Step("stop serve", f"kill -INT {serve.pid}", code,
                               time.perf_counter() - t0))  # fmt: skip
    time.sleep(1.0)


def _steps(demo: _Demo, out: Path) -> dict[str, Any]:
    cfg = demo.cfg
    catalog, sweeps, run, node_dir = out / "catalog", out / "sweeps", out / "backtest", out / "node"
    held_out = (START + datetime.timedelta(days=N_DAYS - 1)).isoformat()
    demo.nhmm(f"synthesise {N_DAYS - 1} symbol-days to search and train", "data", "synth",
              "--symbol", SYMBOL, "--days", str(N_DAYS - 1), "--seed", str(cfg.seed),
              "--day-seconds", str(cfg.day_seconds), "--start", START.isoformat(),
              "--out", shown(catalog))  # fmt: skip
    held_out_s = cfg.held_out_seconds or cfg.day_seconds
    demo.nhmm("synthesise the held-out day", "data", "synth", "--symbol", SYMBOL, "--days", "1",
              "--seed", str(cfg.seed + 1), "--day-seconds", str(held_out_s), "--start", held_out,
              "--out", shown(catalog),
              note="the same market, its own seed: nothing of it is in the search days")  # fmt: skip
    demo.nhmm("sweep on Ray Tune (embedded), last day held out", "sweep", "--catalog",
              shown(catalog), "--symbols", SYMBOL, "--num-samples", str(cfg.num_samples),
              "--seed", str(cfg.seed), "--k", "3", "--covariance", "diag", "--test-days", "1",
              "--out", shown(sweeps),
              note="walk-forward search on the first 3 days (K=3 diagonal HMMs: a small space "
              "for a quick demo; drop --k/--covariance for the full one); the winner is refit "
              f"on them and tested on {held_out} (out-of-sample), registered as `candidate`")  # fmt: skip
    demo.nhmm("promote the best", "models", "promote", "candidate")
    demo.nhmm("the registry", "models", "list")

    from serving.testing import free_port

    port = free_port()
    config = write_serve_config(out / "serve_config.yaml", port)
    demo.header("start Serve in the background")
    serve_cmd = f"serve run {shown(config)} > {shown(out / 'logs' / 'serve.log')} 2>&1 &"
    demo.echo(serve_cmd, f"serving/serve_config.yaml on port {port}; ready when /healthz "
              "answers 200")  # fmt: skip
    t0 = time.perf_counter()
    for attempt in (1, 2):
        serve = demo.serve = ServeProcess(config, port, demo.env, out / "logs" / "serve.log", REPO)
        columns = (TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=demo.console, transient=True) as bar:
            bar.add_task(f"waiting for {serve.url}/healthz (timeout {cfg.serve_timeout_s:.0f} s)")
            try:
                pids = [serve.pid]
                waited = serve.wait_healthy(cfg.serve_timeout_s, lambda p=pids: demo.watch.scan(p))
                break
            except UnavailableError:
                slow = serve.proc.poll() is not None and RAY_SLOW_START in _tail(serve.log, 80)
                if attempt == 2 or not slow:
                    raise
        demo.echo(serve_cmd, "Ray did not start within its 30 s (a busy machine): once more")
    demo.echo(f"curl -sf {serve.url}/healthz")
    demo.console.print(f"  Serve healthy after {waited:.1f} s", markup=False)
    demo.steps.append(Step("start serve", f"serve run {shown(config)}", None,
                           time.perf_counter() - t0))  # fmt: skip

    demo.nhmm("backtest the held-out day through Serve", "backtest", "--catalog", shown(catalog),
              "--symbol", SYMBOL, "--days", held_out, "--model", "live", "--serve", serve.url,
              "--out", shown(run), note="Nautilus, asking Serve over HTTP for every sample")  # fmt: skip
    demo.nhmm("acceptance checks", "acceptance", shown(run), ok=(0, 1),
              note="exit 1 = a check failed (a short day often fails the PnL one): shown, "
              "not fatal")  # fmt: skip
    demo.nhmm("HTML report", "report", shown(run))

    replay = [a for r in cfg.recordings for a in ("--replay", shown(r))]
    node_args = [*replay, "--speed", f"{cfg.speed:g}", "--account", "spot", "--symbol", SYMBOL,
                 "--model", "live", "--serve", serve.url, "--state-dir", shown(node_dir),
                 "--out", shown(node_dir / "run")]  # fmt: skip
    demo.run("replay the real recording through the loopback venue, asking Serve",
             ["python", "node/run.py", *node_args], [sys.executable, "node/run.py", *node_args],
             quiet=True, expect_s=RECORDING_S / cfg.speed + 30,
             note="the real Nautilus Binance adapter against the in-process loopback venue; "
             "features warm up for 600 s of exchange time first")  # fmt: skip
    node_summary = _json(node_dir / "run" / "summary.json")
    days = node_summary.get("days") or [datetime.datetime.now(datetime.UTC).date().isoformat()]
    for day in days:
        demo.nhmm(f"roll up the node's day {day}", "rollup", "--date", day, "--run",
                  shown(node_dir / "run"), "--to", shown(out / "rollup"),
                  note="the venue replays on the wall clock: the node's day is today (UTC)")  # fmt: skip
    sweep_summary = next(iter(sorted(sweeps.glob("*/summary.json"))), None)
    return {
        "out": str(out),
        "serve_url": serve.url,
        "held_out_day": held_out,
        "sweep": _json(sweep_summary) if sweep_summary else {},
        "sweep_dir": str(sweep_summary.parent) if sweep_summary else None,
        "backtest": _json(run / "summary.json"),
        "backtest_guardrails": _json(run / "guardrails.json"),
        "acceptance": _json(run / "acceptance.json"),
        "node": node_summary,
        "node_guardrails": _json(node_dir / "run" / "guardrails.json"),
        "outputs": {
            "catalog": shown(catalog),
            "sweep": shown(sweep_summary.parent) if sweep_summary else None,
            "registry": shown(out / "model_store"),
            "backtest RUN_DIR": shown(run),
            "report": shown(run / "report.html"),
            "node RUN_DIR": shown(node_dir / "run"),
            "rollup": shown(out / "rollup"),
            "logs": shown(out / "logs"),
            "commands": shown(out / "commands.sh"),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = DemoConfig()
    parser.add_argument("--out", type=Path, default=defaults.out)
    parser.add_argument("--day-seconds", type=int, default=defaults.day_seconds)
    parser.add_argument("--held-out-seconds", type=int, default=defaults.held_out_seconds,
                        help="the held-out day's length (default: --day-seconds)")  # fmt: skip
    parser.add_argument("--num-samples", type=int, default=defaults.num_samples)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--speed", type=float, default=defaults.speed)
    parser.add_argument("--serve-timeout-s", type=float, default=defaults.serve_timeout_s)
    args = parser.parse_args(argv)
    cfg = DemoConfig(out=args.out, day_seconds=args.day_seconds,
                     held_out_seconds=args.held_out_seconds, num_samples=args.num_samples,
                     seed=args.seed, speed=args.speed, serve_timeout_s=args.serve_timeout_s)  # fmt: skip
    try:
        run_demo(cfg)
    except NhmmError as exc:  # a failed step, Serve never healthy, a process left behind
        print(f"\ndemo FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
