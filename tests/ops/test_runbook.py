"""``ops/env.example`` and ``ops/runbook.md`` are current: every environment variable the code
reads is in env.example (found by reading the code's AST), every alert is in the runbook."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("cluster", "training", "serving", "node", "ops", "bench")
ENV_EXAMPLE = REPO / "ops" / "env.example"
RUNBOOK = REPO / "ops" / "runbook.md"
#: Names with these prefixes are environment variables wherever they appear as a string.
_PREFIXED = re.compile(r"^(?:NHMM|AWS|RAY|BINANCE|TRADING)_[A-Z0-9_]+$")
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def env_reads(source: str) -> set[str]:
    """Variables a module reads: ``os.environ[...]``/``.get``/``.setdefault``/``.pop``,
    ``os.getenv``, ``env.get`` on an environ mapping, and any string constant (outside
    docstrings) shaped like ``NHMM_*``/``AWS_*``/``RAY_*``/``BINANCE_*``/``TRADING_*``.

    >>> sorted(env_reads('import os\\nos.environ.get("X_Y")\\nenv = os.environ\\nenv["Z"]\\n'
    ...                  'N = "NHMM_A"\\ndef f():\\n    "RAY_DOC_ONLY"\\n'))
    ['NHMM_A', 'X_Y', 'Z']
    """
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in skip and _PREFIXED.match(node.value)):  # fmt: skip
            found.add(node.value)
        args, receiver = [], ""
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("get", "setdefault", "pop", "getenv"):
                args, receiver = node.args[:1], ast.unparse(node.func.value)
        elif isinstance(node, ast.Subscript):
            args, receiver = [node.slice], ast.unparse(node.value)
        if "env" in receiver.lower() or receiver == "os":
            found |= {a.value for a in args if isinstance(a, ast.Constant)
                      and isinstance(a.value, str) and _NAME.match(a.value)}  # fmt: skip
    return found


def code_env_vars() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            for name in env_reads(path.read_text()):
                out.setdefault(name, []).append(str(path.relative_to(REPO)))
    return out


def documented() -> set[str]:
    names = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=", line.strip())
        if m:
            names.add(m.group(1))
    return names


def test_every_variable_the_code_reads_is_in_env_example() -> None:
    read = code_env_vars()
    assert {"NHMM_REGISTRY", "NHMM_ADMIN_TOKEN", "AWS_REGION", "RAY_ADDRESS"} <= set(read)
    missing = {name: where for name, where in read.items() if name not in documented()}
    assert not missing, f"read by the code but not in ops/env.example: {missing}"


def test_env_example_has_no_values_for_secrets() -> None:
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m and re.search(r"SECRET|TOKEN|PASSWORD|API_KEY|ACCESS_KEY", m.group(1)):
            assert m.group(2) == "", f"{m.group(1)}: env.example must not hold a secret value"


def test_every_live_variable_in_env_example_is_read_by_the_code() -> None:
    """No documented ``BINANCE_*``/``TRADING_*`` variable that nothing reads (the live node does)."""
    read = set(code_env_vars())
    listed = {
        m.group(1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if (m := re.match(r"^#? ?([A-Z][A-Z0-9_]*)=", line))
        and m.group(1).startswith(("BINANCE_", "TRADING_"))
    }
    assert listed, "ops/env.example documents the live node's variables"
    assert listed <= read, f"documented but read by no code: {sorted(listed - read)}"


def test_runbook_covers_every_alert_and_procedure() -> None:
    text = RUNBOOK.read_text()
    groups = yaml.safe_load((REPO / "ops" / "prometheus" / "rules.yml").read_text())["groups"]
    for rule in (r for g in groups for r in g["rules"]):
        assert rule["alert"] in text, rule["alert"]
    for heading in ("## Components", "## Kill switch release", "## Model rollback",
                    "## Rollups and restore"):  # fmt: skip
        assert heading in text
    for command in ("nhmm killswitch reset", "nhmm models rollback", "/v1/aliases/live/rollback",
                    "nhmm rollup", "serve run", "ray up", "python -m ops.prometheus.feed"):  # fmt: skip
        assert command in text, command
