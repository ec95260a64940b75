"""Where an S3 prefix is (`S3Location`, from an `s3://` URL) and this process's clients to it.

Below the engine and the store: model artifacts (engine/s3_artifacts.py) and DynamoDB's
exports of the purchase table (store/dynamodb/export.py) both live in S3.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import NoRegionError

from omnix_recs.errors import FailedPreconditionError

if TYPE_CHECKING:  # type information only (the dev extra's types-boto3)
    from types_boto3_s3.client import S3Client

URL_FORM = "s3://bucket/prefix[?endpoint=URL&region=NAME]"
URL_PARAMETERS = ("endpoint", "region")
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
REGION_NAME = re.compile(r"[a-z0-9-]{1,32}")


@dataclass(frozen=True)
class S3Location:
    """`s3://bucket/prefix?endpoint=URL&region=NAME`, and where to reach it. Both parameters are
    optional: without them boto3's usual configuration applies (`AWS_ENDPOINT_URL_S3`,
    `AWS_ENDPOINT_URL`, `AWS_REGION`, profiles). `prefix` has no leading or trailing slash."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """`ValueError` saying what is wrong; the message never repeats the URL, which could
        hold something secret by mistake."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not url.startswith("s3://"):
            raise ValueError(f"expected {URL_FORM}")
        if "@" in parts.netloc:
            raise ValueError("credentials do not belong in the URL: use the usual AWS variables or profiles")
        if not parts.netloc:
            raise ValueError(f"the bucket name is missing (expected {URL_FORM})")
        if not BUCKET_NAME.fullmatch(parts.netloc):
            raise ValueError(f"{parts.netloc!r} is not a valid bucket name (3-63 of a-z, 0-9, '.', '-')")
        if parts.fragment:
            raise ValueError("unexpected '#' fragment")
        prefix = parts.path.strip("/")
        if prefix and any(segment in ("", ".", "..") for segment in prefix.split("/")):
            raise ValueError("the prefix must not contain empty, '.' or '..' segments")
        parameters: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name not in URL_PARAMETERS:
                raise ValueError(f"unknown parameter {name!r} (known: {', '.join(URL_PARAMETERS)})")
            if name in parameters:
                raise ValueError(f"parameter {name!r} given twice")
            parameters[name] = value
        endpoint = parameters.get("endpoint") or None
        if endpoint is not None:
            endpoint_parts = urlsplit(endpoint)
            if (
                endpoint_parts.scheme not in ("http", "https")
                or not endpoint_parts.netloc
                or "@" in endpoint_parts.netloc
            ):
                raise ValueError("endpoint must be an http:// or https:// URL without credentials")
        region = parameters.get("region") or None
        if region is not None and not REGION_NAME.fullmatch(region):
            raise ValueError(f"{region!r} is not a region name")
        return cls(parts.netloc, prefix, endpoint, region)

    def __str__(self) -> str:
        """The URL `parse` reads back (endpoint and region kept, so other processes find it)."""
        parameters = {name: value for name, value in (("endpoint", self.endpoint), ("region", self.region)) if value}
        query = f"?{urlencode(parameters, safe=':/')}" if parameters else ""
        return f"{self.display}{query}"

    @property
    def display(self) -> str:
        """`s3://bucket/prefix`, for messages."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def name(self) -> str:
        """The last segment of the prefix: the version, for a version's location."""
        return self.prefix.rsplit("/", 1)[-1]

    def child(self, name: str) -> S3Location:
        return replace(self, prefix=f"{self.prefix}/{name}" if self.prefix else name)

    def key(self, file_name: str) -> str:
        return f"{self.prefix}/{file_name}" if self.prefix else file_name


class _Clients:
    """One boto3 client per (endpoint, region) in a process: clients are thread-safe and slow to
    create. Forgotten in a forked child, whose inherited connections belong to the parent.
    Retries are botocore's standard mode: 3 attempts unless `AWS_MAX_ATTEMPTS` says otherwise."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str | None, str | None], S3Client] = {}
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._clients = {}
        self._lock = threading.Lock()

    def get(self, location: S3Location) -> S3Client:
        key = (location.endpoint, location.region)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                config = Config(retries={"mode": "standard"}, connect_timeout=3, read_timeout=30)
                try:
                    client = boto3.session.Session().client(
                        "s3", endpoint_url=location.endpoint, region_name=location.region, config=config
                    )
                except NoRegionError:
                    raise FailedPreconditionError(
                        "no AWS region for S3: add ?region=... to the URL or set AWS_REGION"
                    ) from None
                self._clients[key] = client
            return client


_clients = _Clients()


def s3_client(location: S3Location) -> S3Client:
    """The boto3 S3 client this process uses for `location`."""
    return _clients.get(location)
