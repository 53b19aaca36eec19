"""One embedded local Ray for the training tests that use one (the feature cache's and the
sweeps'): a Ray start is 10-30 s on the test machine, so it is started once, at the first such
test, and shut down after the package's last test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.local_ray import local_ray_session


@pytest.fixture(scope="package")
def local_ray() -> Iterator[None]:
    with local_ray_session():
        yield
