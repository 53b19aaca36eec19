"""The processes a command started, tracked through ``/proc`` (Linux), to prove none is left.

Ray's actors and workers lead their own process groups and are re-parented when their raylet
dies, so a process group or a final tree walk misses them. :class:`ProcessWatch` therefore
remembers every descendant of its roots while they run (``scan``, called often), plus any
process whose command line names ``marker`` (the Ray temp dir: gcs, raylet, dashboard), and
afterwards reports which of them still run (same pid *and* start time: pids are reused).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Proc", "ProcessWatch", "process_table"]

_PROC = Path("/proc")


@dataclass(frozen=True)
class Proc:
    """One process: ids, start time (clock ticks after boot), state letter, command line."""

    pid: int
    ppid: int
    pgid: int
    start: int
    state: str
    cmd: str

    def describe(self) -> str:
        """``pid 123 raylet --raylet_socket...`` cut to one short line."""
        return f"pid {self.pid} {self.cmd[:120]}"


def _read(pid: int) -> Proc | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:  # gone meanwhile
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after the last ')'
    head, _, rest = stat.rpartition(")")
    fields = rest.split()
    cmd = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    name = head.partition("(")[2]
    return Proc(pid, int(fields[1]), int(fields[2]), int(fields[19]), fields[0], cmd or f"[{name}]")


def process_table() -> dict[int, Proc]:
    """Every process visible now, by pid (an empty table where there is no ``/proc``)."""
    if not _PROC.is_dir():
        return {}
    procs = (_read(int(p.name)) for p in _PROC.iterdir() if p.name.isdigit())
    return {p.pid: p for p in procs if p is not None}


class ProcessWatch:
    """Every process that belongs to the watched roots, seen so far; which of them still run."""

    def __init__(self, marker: str | None = None) -> None:
        self.marker = marker
        self.seen: dict[int, Proc] = {}

    def scan(self, roots: Iterable[int]) -> None:
        """Remember the roots, all their descendants, and every process naming the marker."""
        table = process_table()
        children: dict[int, list[int]] = {}
        for p in table.values():
            children.setdefault(p.ppid, []).append(p.pid)
        todo = [r for r in roots if r in table]
        todo += [p.pid for p in table.values() if self.marker and self.marker in p.cmd]
        while todo:
            pid = todo.pop()
            if pid in table and pid not in self.seen:
                self.seen[pid] = table[pid]
                todo.extend(children.get(pid, ()))

    def alive(self, exclude: Iterable[int] = ()) -> list[Proc]:
        """Remembered processes still running (zombies are dead), and new ones naming the
        marker; never the pids in ``exclude`` (the caller itself)."""
        skip = {os.getpid(), *exclude}
        table = process_table()
        left = {pid: table[pid] for pid, p in self.seen.items()
                if pid in table and table[pid].start == p.start}  # fmt: skip
        if self.marker:
            left.update({p.pid: p for p in table.values() if self.marker in p.cmd})
        return sorted((p for p in left.values() if p.state != "Z" and p.pid not in skip),
                      key=lambda p: p.pid)  # fmt: skip

    def kill(self, procs: Iterable[Proc]) -> None:
        """SIGKILL exactly these processes (each checked to be the one remembered)."""
        table = process_table()
        for p in procs:
            now = table.get(p.pid)
            if now is not None and now.start == p.start:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
