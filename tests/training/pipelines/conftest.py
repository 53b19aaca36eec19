"""One embedded local Ray for the sweep tests of this package (a Ray start is 15-30 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.local_ray import local_ray_session


@pytest.fixture(scope="package")
def local_ray() -> Iterator[None]:
    with local_ray_session():
        yield
