"""The one error hierarchy: every error a user can cause is an :class:`NhmmError`.

The kind of an error is its class, never its message: Serve maps classes to HTTP statuses and
the ``nhmm`` command maps any ``NhmmError`` to a one-line message and exit code 2. Anything else
that escapes is a bug and keeps its traceback.

The kinds also derive from the matching built-in (``NotFoundError`` is a ``KeyError``,
``BadInputError`` a ``ValueError``) so callers that catch the built-in keep working.

>>> try:
...     raise NotFoundError("no partition BTCUSDT.BINANCE/2020-01-01", field="days")
... except KeyError as exc:
...     print(exc, "|", exc.field, "|", isinstance(exc, NhmmError))
no partition BTCUSDT.BINANCE/2020-01-01 | days | True
>>> str(BadInputError("not a number", field="price", line=12))
'line 12: not a number'
>>> import pickle
>>> back = pickle.loads(pickle.dumps(BadInputError("bad", field="X", line=3)))
>>> type(back).__name__, back.field, back.line, str(back)
('BadInputError', 'X', 3, 'line 3: bad')
"""

from __future__ import annotations

__all__ = [
    "BadInputError",
    "ConflictError",
    "IntegrityError",
    "NhmmError",
    "NotFoundError",
    "SchemaMismatchError",
    "UnavailableError",
]


class NhmmError(Exception):
    """Root of every error a user (or their data) can cause; ``field`` names what was wrong."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message

    def __reduce__(self) -> tuple[object, ...]:  # keep ``field`` (and ``line``) across processes
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[NhmmError], message: str, state: dict[str, object]) -> NhmmError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.__dict__.update(state)
    return exc


class NotFoundError(NhmmError, KeyError):
    """A named thing does not exist: a symbol-day, a model version, an alias, a file."""


class ConflictError(NhmmError):
    """The request clashes with the current state: an immutable version, a held lock, nothing
    to roll back to."""


class BadInputError(NhmmError, ValueError):
    """Input that cannot be used as given; ``field`` and ``line`` say where."""

    def __init__(self, message: str, *, field: str | None = None, line: int | None = None) -> None:
        super().__init__(message, field=field)
        self.line = line

    def __str__(self) -> str:
        return self.message if self.line is None else f"line {self.line}: {self.message}"


class SchemaMismatchError(BadInputError):
    """Data written under another schema (feature schema version, bundle format) than expected."""


class IntegrityError(NhmmError):
    """Stored bytes are not what was written: a hash mismatch, a truncated or tampered file."""


class UnavailableError(NhmmError):
    """A service this command needs did not answer (Ray job server, Serve, a download host)."""
