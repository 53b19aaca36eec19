"""What must be true before the node may trade: keys for the environment, and for ``--live``
the explicit go-ahead. Keys come only from the environment (or ``.env``) and are never logged:
:class:`Credentials` hides the secret from ``repr`` and :meth:`Credentials.redact` scrubs it
from any text.

>>> env = {"BINANCE_TESTNET_API_KEY": "k", "BINANCE_TESTNET_API_SECRET": "s3cr3t"}
>>> creds = credentials("testnet", "spot", env)
>>> creds, creds.redact("signed with s3cr3t")
(Credentials(environment='testnet', key_var='BINANCE_TESTNET_API_KEY'), 'signed with ***')
>>> check_live(env, confirmed=True)
Traceback (most recent call last):
...
node.live.safety.LiveRefused: --live refused: BINANCE_API_KEY / BINANCE_API_SECRET are not set (live keys come from the environment or .env)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field

from training.errors import BadInputError

__all__ = [
    "KEY_VARS",
    "Credentials",
    "LiveRefused",
    "check_live",
    "credentials",
    "trading_enabled",
]

#: ``(environment, account) -> (key variable, secret variable)``: the names Nautilus's Binance
#: adapter reads (``nautilus_trader/adapters/binance/common/credentials.py``).
KEY_VARS: dict[tuple[str, str], tuple[str, str]] = {
    ("live", "spot"): ("BINANCE_API_KEY", "BINANCE_API_SECRET"),
    ("live", "usdm"): ("BINANCE_API_KEY", "BINANCE_API_SECRET"),
    ("testnet", "spot"): ("BINANCE_TESTNET_API_KEY", "BINANCE_TESTNET_API_SECRET"),
    ("testnet", "usdm"): ("BINANCE_FUTURES_TESTNET_API_KEY", "BINANCE_FUTURES_TESTNET_API_SECRET"),
    ("demo", "spot"): ("BINANCE_DEMO_API_KEY", "BINANCE_DEMO_API_SECRET"),
    ("demo", "usdm"): ("BINANCE_DEMO_API_KEY", "BINANCE_DEMO_API_SECRET"),
}


class LiveRefused(BadInputError):
    """The node will not trade with real money as configured; the message says what is missing."""


@dataclass(frozen=True)
class Credentials:
    """One environment's API key pair (``secret`` never shown)."""

    environment: str
    key_var: str
    key: str = field(repr=False)
    secret: str = field(repr=False)

    def redact(self, text: str) -> str:
        """``text`` with the key and the secret (and each line of a PEM secret) replaced."""
        for s in (self.secret, *(ln for ln in self.secret.splitlines() if len(ln) > 8
                                 and not ln.startswith("-----")), self.key):  # fmt: skip
            if s:
                text = text.replace(s, "***")
        return text


def credentials(environment: str, account: str, env: Mapping[str, str]) -> Credentials | None:
    """The key pair of ``environment`` / ``account`` from ``env``; ``None`` if either is unset."""
    key_var, secret_var = KEY_VARS[(environment, account)]
    key, secret = env.get(key_var, "").strip(), env.get(secret_var, "").strip()
    if not key or not secret:
        return None
    return Credentials(environment, key_var, key, secret.replace("\\n", "\n"))


def trading_enabled(env: Mapping[str, str], default: bool = False) -> bool:
    """``TRADING_ENABLED`` (true/false, 1/0, yes/no); ``default`` when unset.

    >>> trading_enabled({"TRADING_ENABLED": "TRUE"}), trading_enabled({}, default=True)
    (True, True)
    """
    raw = env.get("TRADING_ENABLED", "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise BadInputError(f"TRADING_ENABLED must be true or false, got {raw!r}",
                        field="TRADING_ENABLED")  # fmt: skip


def check_live(env: Mapping[str, str], *, confirmed: bool) -> Credentials:
    """The live keys, if real money may be traded: live keys set, not a testnet or demo key,
    ``TRADING_ENABLED=true`` and the ``--i-understand-live-trading`` confirmation; else
    :class:`LiveRefused` with one line naming what is missing."""
    creds = credentials("live", "spot", env)
    if creds is None:
        raise LiveRefused("--live refused: BINANCE_API_KEY / BINANCE_API_SECRET are not set "
                          "(live keys come from the environment or .env)")  # fmt: skip
    for (environment, _account), (key_var, _) in KEY_VARS.items():
        if environment != "live" and env.get(key_var, "").strip() == creds.key:
            raise LiveRefused(f"--live refused: BINANCE_API_KEY is the {environment} key "
                              f"({key_var}): use the live account's key")  # fmt: skip
    if not trading_enabled(env):
        raise LiveRefused("--live refused: TRADING_ENABLED is not true (set TRADING_ENABLED=true "
                          "to trade real money)")  # fmt: skip
    if not confirmed:
        raise LiveRefused("--live refused: add --i-understand-live-trading to trade real money")
    return creds
