"""A local S3-compatible server for the model artifact tests: moto's server mode on 127.0.0.1.

The server and its fake credentials come from tests/local_aws.py, as for the DynamoDB tests.
The fixtures that start it (`local_s3`, one server per test module) and give each test a bucket
of its own (`bucket`) are in conftest.py, so that tests receive them without importing them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from local_aws import moto_server

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


@contextmanager
def running_local_s3() -> Iterator[LocalS3]:
    """A moto server on 127.0.0.1 (tests/local_aws.py), stopped on leaving."""
    with moto_server() as endpoint:
        yield LocalS3(endpoint, boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1"))
