"""moto's server mode on 127.0.0.1: the local AWS stand-in of the DynamoDB and S3 tests.

One server in a thread of the test process, reached over real HTTP by real boto3 clients, so
requests, errors and pagination go through the same code as against AWS. While it runs, fake
credentials are in the environment (boto3 signs every request, moto accepts any signature) and
endpoint settings a developer's shell may carry are removed, so no real AWS configuration on
the machine is read and nothing is sent elsewhere; the previous values come back afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

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
CLEARED_ENVIRONMENT = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_PROFILE",
    "AWS_REGION",
)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on a free port of 127.0.0.1; yields its endpoint URL."""
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
            yield f"http://{host}:{port}"
        finally:
            server.stop()
