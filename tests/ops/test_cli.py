"""The ops command module is light at import: ``nhmm --help`` imports it."""

from __future__ import annotations

from tests.import_probe import heavy_imports


def test_command_module_is_light_at_import() -> None:
    assert heavy_imports("ops.cli") == []
