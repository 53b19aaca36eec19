"""Registry and bundle errors carry their kind by class (what Serve and the CLI map them by)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bundle_setup import make_bundle
from tests.bundle_setup import policy_bytes
from training.artifacts.bundle import BundleExistsError
from training.artifacts.bundle import SchemaVersionError
from training.artifacts.bundle import load_bundle
from training.artifacts.bundle import save_bundle
from training.artifacts.errors import BadRootError
from training.artifacts.registry import BadAliasError
from training.artifacts.registry import LockTimeoutError
from training.artifacts.registry import NothingToRollBackError
from training.artifacts.registry import Registry
from training.artifacts.registry import RegistryError
from training.artifacts.registry import UnknownModelError
from training.artifacts.store import LocalStore
from training.errors import BadInputError
from training.errors import ConflictError
from training.errors import NhmmError
from training.errors import NotFoundError
from training.errors import SchemaMismatchError


@pytest.fixture(scope="module")
def policy() -> bytes:
    return policy_bytes()


def test_registry_errors_are_of_their_kind(tmp_path: Path, policy: bytes) -> None:
    reg = Registry(tmp_path / "store")
    v1 = reg.register(make_bundle(1, policy=policy))
    with pytest.raises(UnknownModelError) as unknown:
        reg.resolve("live")
    assert isinstance(unknown.value, NotFoundError) and isinstance(unknown.value, KeyError)
    assert str(unknown.value).startswith("unknown model ref 'live'")  # not quoted like KeyError
    with pytest.raises(NothingToRollBackError) as unset:
        reg.rollback("live")
    assert isinstance(unset.value, ConflictError) and isinstance(unset.value, RegistryError)
    reg.promote(v1)
    with pytest.raises(NothingToRollBackError, match="no earlier version"):
        reg.rollback("live")
    with pytest.raises(BadAliasError) as bad:
        reg.promote(v1, alias="v12")
    assert isinstance(bad.value, BadInputError) and bad.value.field == "alias"
    with pytest.raises(BadRootError, match="missing bucket"):
        Registry("s3:///models")


def test_a_held_lock_times_out_as_a_conflict(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with (
        store.lock("alias-live"),
        pytest.raises(LockTimeoutError) as held,
        store.lock("alias-live", timeout_s=0.05),
    ):
        pass
    assert isinstance(held.value, ConflictError) and isinstance(held.value, RegistryError)


def test_bundle_errors_are_of_their_kind(tmp_path: Path, policy: bytes) -> None:
    bundle = make_bundle(1, policy=policy)
    save_bundle(bundle, tmp_path)
    with pytest.raises(BundleExistsError) as exists:
        save_bundle(bundle, tmp_path)
    assert isinstance(exists.value, ConflictError)
    with pytest.raises(SchemaVersionError) as schema:
        load_bundle(tmp_path, expected_schema_version="FEATURES_V2")
    assert isinstance(schema.value, SchemaMismatchError) and isinstance(schema.value, NhmmError)
