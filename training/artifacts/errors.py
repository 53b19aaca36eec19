"""Errors of the model artifacts: bundles (format, integrity, schema) and the registry.

Each class is rooted in :class:`~training.errors.NhmmError` and also carries its kind
(not found, conflict, bad input, integrity, schema mismatch), so Serve picks the HTTP status
and the CLI its message by class, never by the message text. ``BundleError`` and
``RegistryError`` stay the catch-all bases of their module.

>>> exc = UnknownModelError("unknown model ref 'live'")
>>> isinstance(exc, RegistryError), isinstance(exc, NotFoundError), str(exc)
(True, True, "unknown model ref 'live'")
>>> isinstance(NothingToRollBackError("x"), ConflictError)
True
"""

from __future__ import annotations

from training.errors import BadInputError
from training.errors import ConflictError
from training.errors import IntegrityError
from training.errors import NhmmError
from training.errors import NotFoundError
from training.errors import SchemaMismatchError

__all__ = [
    "BadAliasError",
    "BadRootError",
    "BundleEncodeError",
    "BundleError",
    "BundleExistsError",
    "BundleIntegrityError",
    "LockTimeoutError",
    "NothingToRollBackError",
    "RegistryError",
    "SchemaVersionError",
    "UnknownModelError",
    "VersionExistsError",
]


class BundleError(NhmmError):
    """A bundle cannot be written or read (base of the bundle errors)."""


class BundleEncodeError(BundleError, BadInputError):
    """Bundle content that cannot be stored as given (non-finite threshold, object array...)."""


class BundleExistsError(BundleError, ConflictError):
    """The target directory of a new bundle exists and is not empty."""


class BundleIntegrityError(BundleError, IntegrityError):
    """A bundle file is missing, unexpected, or does not match its manifest entry."""


class SchemaVersionError(BundleError, SchemaMismatchError):
    """The bundle's feature schema version differs from the one the caller runs."""


class RegistryError(NhmmError):
    """A registry operation cannot be done (base of the registry errors)."""


class UnknownModelError(RegistryError, NotFoundError):
    """No visible version answers to the ref (alias, version id or number)."""


class VersionExistsError(RegistryError, ConflictError):
    """The version (or a number for it) is taken: versions are immutable, numbers never reused."""


class NothingToRollBackError(RegistryError, ConflictError):
    """The alias is not set or has no earlier target to roll back to."""


class BadAliasError(RegistryError, BadInputError):
    """An alias name the registry refuses (shape, or looks like a version number)."""


class BadRootError(RegistryError, BadInputError):
    """A store root that names no usable location (e.g. ``s3://`` without a bucket)."""


class LockTimeoutError(RegistryError, ConflictError):
    """Another writer held the alias lock for longer than the timeout."""
