"""A local S3-compatible server for the model artifact tests: moto's server mode on 127.0.0.1.

The same arrangement as tests/store/moto_server.py (which serves DynamoDB): one server in a
thread of the test process, reached over real HTTP by real boto3 clients. Here it lives for one
test module, and so do the fake credentials it puts in the environment (boto3 signs every
request, moto accepts any signature, and no real AWS configuration on the machine is read).
Each test gets a bucket of its own.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass
from typing import Any, Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
# Endpoint settings a developer's shell may carry, which would send the tests elsewhere.
CLEARED_ENVIRONMENT = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_REGION")
_bucket_numbers = itertools.count()


@dataclass(frozen=True)
class LocalS3:
    endpoint: str  # http://127.0.0.1:<port>
    client: Any  # a boto3 S3 client of the tests' own, for looking at and damaging objects

    def new_bucket(self) -> str:
        name = f"models-{next(_bucket_numbers)}"
        self.client.create_bucket(Bucket=name)
        return name

    def url(self, bucket: str, prefix: str = "omnix/models") -> str:
        """An `OMNIX_MODEL_DIR` for `bucket` on this server."""
        return f"s3://{bucket}/{prefix}?endpoint={self.endpoint}&region=us-east-1"

    def keys(self, bucket: str) -> list[str]:
        return sorted(o["Key"] for o in self.client.list_objects_v2(Bucket=bucket).get("Contents", []))


@pytest.fixture(scope="module")
def local_s3() -> Iterator[LocalS3]:
    """A moto server on 127.0.0.1 (a free port), with fake AWS credentials set meanwhile."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not one access-log line per request
    with pytest.MonkeyPatch.context() as environment:
        for name in CLEARED_ENVIRONMENT:
            environment.delenv(name, raising=False)
        for name, value in FAKE_AWS_ENVIRONMENT.items():
            environment.setenv(name, value)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            yield LocalS3(endpoint, boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1"))
        finally:
            server.stop()


@pytest.fixture
def bucket(local_s3: LocalS3) -> str:
    """An empty bucket of the test's own."""
    return local_s3.new_bucket()
