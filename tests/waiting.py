"""Waiting for a real service in a test: poll a condition until it holds or time runs out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

__all__ = ["wait_for"]


def wait_for(cond: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.2) -> Any:
    """``cond()``'s first truthy value; an HTTP or socket error counts as not yet. After
    ``timeout_s`` an ``AssertionError`` names ``what`` was awaited."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            out = cond()
        except (httpx.HTTPError, OSError):
            out = None
        if out:
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)
