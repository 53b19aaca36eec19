"""Every command in README.md's ```bash blocks is executed by the suite.

- The walkthrough's demo commands: by running ``make demo``'s ``python -m ops.demo`` at a small
  size (:mod:`tests.demo_setup`) and finding each README command in its transcript
  (``OUT/commands.sh``), equal up to the run's own paths, port, pid and date, and the values
  of the size options (:data:`ops.demo.SIZE_OPTIONS`).
- ``python node/run.py --testnet|--demo ...``: run here, as written (the paths it writes moved
  under the test's dir), with fake keys for that environment and ``--replay`` of a real
  recording added (the loopback venue stands in for Binance, which a test must never dial);
  ``--live``: run here without keys, which it must refuse in one line (exit 2) before anything
  connects.
- ``make demo`` (the Makefile recipe is ``python -m ops.demo``, checked in
  ``tests/ops/test_demo.py``) and ``make test`` (this suite).

A README command none of these runs fails :func:`test_every_readme_command_is_executed`.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from node.live.safety import KEY_VARS
from ops.demo import SIZE_OPTIONS
from tests.demo_setup import REPO
from tests.demo_setup import DemoRun
from tests.demo_setup import start_tiny_demo
from tests.demo_setup import tiny_demo
from tests.demo_setup import wait_for_live_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

README = REPO / "README.md"
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
#: Run by being the suite / checked as the demo's recipe.
BY_THE_SUITE = {"make test", "make demo"}
RECORDING = {"spot": "spot_btcusdt_20240808.gz", "usdm": "usdm_btcusdt_20240808.gz"}
FAKE_SECRET = "fake-readme-secret-0123456789"


def readme_commands(text: str) -> list[str]:
    """Each command of the ```bash blocks (continuations joined, comments dropped).

    >>> readme_commands("x\\n```bash\\n# hi\\nnhmm a \\\\\\n  --b 1  # note\\n```\\n")
    ['nhmm a --b 1']
    """
    out = []
    for block in BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            if tokens:
                out.append(shlex.join(tokens))
    return out


def normalise(command: str, out: Path | None = None) -> str:
    """A command with the run's own paths, port, pid, date and sizes replaced by names.

    >>> normalise("nhmm sweep --out /x/demo_run/sweeps --num-samples 2", Path("/x/demo_run"))
    'nhmm sweep --out demo_run/sweeps --num-samples SIZE'
    >>> normalise("nhmm backtest --serve http://127.0.0.1:23456 --days 2024-01-04")
    'nhmm backtest --serve http://127.0.0.1:PORT --days 2024-01-04'
    >>> normalise("curl -sf http://127.0.0.1:$PORT/healthz"), normalise("kill -INT %1")
    ('curl -sf http://127.0.0.1:PORT/healthz', 'kill -INT PID')
    """
    tokens, prev = [], ""
    for tok in shlex.split(command, comments=True):
        new = tok.replace(str(out), "demo_run") if out is not None else tok
        new = new.replace("$PWD/", "")
        new = re.sub(r"/tmp/nhmm-demo-\w+", "RAY_TMP", new)
        new = re.sub(r"127\.0\.0\.1:(\d+|\$PORT)", "127.0.0.1:PORT", new)
        if prev in SIZE_OPTIONS:
            new = "SIZE"
        elif prev == "--date":
            new = "DATE"
        elif prev == "-INT":
            new = "PID"
        tokens.append(new)
        prev = tok
    return shlex.join(tokens)


def _is_node(command: str) -> bool:
    return "node/run.py" in shlex.split(command)


@pytest.fixture(scope="module")
def demo() -> DemoRun:
    run = tiny_demo()
    assert run.exit_code == 0, run.output[-6000:]
    return run


@pytest.fixture(scope="module")
def commands() -> list[str]:
    cmds = readme_commands(README.read_text())
    assert len(cmds) >= 10  # the walkthrough is there
    return cmds


def _environment(command: str) -> str | None:
    """The ``--live|--demo|--testnet`` a README node command names (the demo's own node: none)."""
    return next((e for e in ("live", "demo", "testnet") if f"--{e}" in shlex.split(command)), None)


def _node_command(command: str, out: Path) -> tuple[list[str], dict[str, str], str]:
    """``(argv, env, environment)`` of a README ``node/run.py`` command as this test runs it
    (``out``: the demo's OUT dir, whose registry it asks)."""
    tokens = shlex.split(command)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_")}
    env.pop("TRADING_ENABLED", None)
    while "=" in tokens[0]:
        name, value = tokens.pop(0).split("=", 1)
        env[name] = value
    assert tokens[:2] == ["python", "node/run.py"], command
    args = tokens[2:]
    for i, arg in enumerate(args[:-1]):  # every path the node writes goes under the test's dir
        if arg in ("--state-dir", "--out", "--rollup-to"):
            args[i + 1] = str(out / "readme" / args[i + 1].lstrip("/"))
    environment = _environment(command)
    assert environment is not None, command
    env["NHMM_REGISTRY"] = str(out / "model_store")
    args += ["--env-file", str(out / "no.env")]  # no .env of the checkout
    if environment != "live":
        account = args[args.index("--account") + 1] if "--account" in args else "spot"
        key_var, secret_var = KEY_VARS[(environment, account)]
        env.update({key_var: f"fake-{environment}-key", secret_var: FAKE_SECRET})
        recording = REPO.parent / "shared" / "data" / "binance-ws" / RECORDING[account]
        args += ["--replay", str(recording), "--speed", "40"]
    return [sys.executable, "node/run.py", *args], env, environment


def _run_nodes(
    commands: list[str], out: Path
) -> dict[str, tuple[str, subprocess.CompletedProcess[str]]]:
    """Run README node commands at once: ``{command: (environment, done)}``."""
    todo = {c: _node_command(c, out) for c in commands}

    def run(item: tuple[list[str], dict[str, str], str]) -> subprocess.CompletedProcess[str]:
        argv, env, _ = item
        return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300, check=False)  # fmt: skip

    with ThreadPoolExecutor(max(1, len(todo))) as pool:
        done = dict(zip(todo, pool.map(run, todo.values()), strict=True))
    return {c: (todo[c][2], done[c]) for c in todo}


@pytest.fixture(scope="module")
def node_runs(commands: list[str]) -> dict[str, tuple[str, subprocess.CompletedProcess[str]]]:
    """Every README node command the demo does not run, run at once. The paper and live ones
    run beside the demo as soon as its registry has the ``live`` model they ask."""
    out = start_tiny_demo()
    early = [c for c in commands if _is_node(c) and _environment(c) is not None]
    ran = _run_nodes(early, out) if wait_for_live_model() else {}
    demo = tiny_demo()
    assert demo.exit_code == 0, demo.output[-6000:]
    todo = [c for c in commands if _is_node(c)
            and normalise(c) not in {normalise(t, demo.out) for t in demo.commands}]  # fmt: skip
    ran.update(_run_nodes([c for c in todo if c not in ran], out))
    return {c: ran[c] for c in todo}


def test_every_readme_command_is_executed(  # node_runs first: it starts the demo, then its nodes
    node_runs: dict[str, tuple[str, subprocess.CompletedProcess[str]]], commands: list[str], demo: DemoRun
) -> None:  # fmt: skip
    ran = {normalise(t, demo.out) for t in demo.commands}
    missing = [c for c in commands
               if c not in BY_THE_SUITE and normalise(c) not in ran and c not in node_runs]  # fmt: skip
    assert missing == [], "README commands no test runs:\n" + "\n".join(missing)
    assert {"testnet", "demo", "live"} <= {env for env, _ in node_runs.values()}
    assert any(normalise(c) in ran for c in commands if c.startswith("nhmm sweep"))


def test_paper_commands_run_on_the_loopback_venue_and_live_refuses_without_keys(
    node_runs: dict[str, tuple[str, subprocess.CompletedProcess[str]]],
) -> None:
    for command, (environment, done) in node_runs.items():
        output = done.stdout + done.stderr
        assert FAKE_SECRET not in output, command
        if environment == "live":
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 2 and len(lines) == 1, (command, output[-2000:])
            assert lines[0].startswith("Error: --live refused: ") and "BINANCE_API_KEY" in lines[0]
        else:
            assert done.returncode == 0, (command, output[-3000:])
            assert "loopback venue" in output and "node stopped:" in output, output[-2000:]


def test_an_unexecuted_command_would_fail() -> None:
    text = "```bash\nnhmm sweep --catalog elsewhere --num-samples 3\n```\n"
    demo_like = {normalise("nhmm sweep --catalog demo_run/catalog --num-samples 2")}
    assert [c for c in readme_commands(text) if normalise(c) not in demo_like] == [
        "nhmm sweep --catalog elsewhere --num-samples 3"
    ]
