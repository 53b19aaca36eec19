"""A real S3-compatible server (moto) on loopback for tests: its endpoint, the environment a
process needs to reach it (``training.artifacts.store.s3_filesystem`` reads it), new buckets."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator

import pyarrow.fs as pafs

__all__ = ["moto_s3", "new_bucket", "s3_env"]


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a free port); yields ``http://127.0.0.1:PORT``."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_env(endpoint: str) -> dict[str, str]:
    """The variables that point this project's S3 code at ``endpoint`` (test credentials)."""
    return {"NHMM_S3_ENDPOINT": endpoint, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}  # fmt: skip


def new_bucket(endpoint: str, prefix: str = "test") -> tuple[pafs.S3FileSystem, str]:
    """A new, empty bucket on ``endpoint``; returns a filesystem for it and its name."""
    fs = pafs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1",
                           endpoint_override=endpoint.removeprefix("http://"), scheme="http",
                           allow_bucket_creation=True)  # fmt: skip
    bucket = f"{prefix}-{uuid.uuid4().hex[:12]}"
    fs.create_dir(bucket)
    return fs, bucket
