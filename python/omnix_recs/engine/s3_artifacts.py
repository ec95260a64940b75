"""Model artifacts in S3: `s3://` locations, the upload (manifest last) and the checked download.

A version is the disk layout plus `contents.json` (each file's size and SHA-256); the manifest
goes up last, so a version that has one is complete, and a download checked against the
contents never hands a truncated or altered file to a server. Credentials come only from
boto3's chain, never the URL, so URLs can be stored and printed. What will not fix itself
raises `ModelFormatError` (reading) or `FailedPreconditionError` (writing); the rest, after
botocore's retries, `UnavailableError`.

An erasure rewrites some files of a kept version in place (`replace_files`). Meanwhile
`contents.json` accepts either content of each such file (`also_sha256`), so the version
downloads whatever point a rewrite was cut at; a download that meets a file newer than the
contents it read starts again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from omnix_recs.errors import FailedPreconditionError, ModelFormatError, UnavailableError
from omnix_recs.s3 import S3Location, s3_client

if TYPE_CHECKING:  # type information only (the dev extra's types-boto3)
    from types_boto3_s3.client import S3Client

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CONTENTS = "contents.json"
# Version and file names become local file names (the cache): no separators, no leading dot.
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
CHUNK_BYTES = 1 << 20
DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes
# How long a download that found a file differing from `contents.json` waits for a rewrite
# (`replace_files`) to put its new contents, and how often it starts again because of one.
REWRITE_SETTLE_S = 3.0
REWRITE_RESTARTS = 3
# Error codes after which the same request may succeed later (botocore already retried them).
TRANSIENT_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError", "ServiceUnavailable"}
)


@dataclass(frozen=True)
class FileEntry:
    """One file of an uploaded artifact, as measured before the upload."""

    size: int
    sha256: str
    also: tuple[str, ...] = ()  # other SHA-256 accepted while a rewrite runs (`replace_files`)

    def to_json(self) -> dict[str, object]:
        entry: dict[str, object] = {"bytes": self.size, "sha256": self.sha256}
        if self.also:
            entry["also_sha256"] = list(self.also)
        return entry


def measure(path: Path) -> FileEntry:
    with open(path, "rb") as fh:
        return FileEntry(os.fstat(fh.fileno()).st_size, hashlib.file_digest(fh, "sha256").hexdigest())


# --- writing ------------------------------------------------------------------------------------


def upload(directory: Path, location: S3Location) -> dict[str, FileEntry]:
    """Upload the artifact in `directory` to `location` (a version's own prefix): every file,
    then `contents.json`, then the manifest; returns the contents. On failure, what was sent is
    deleted (best effort) and `FailedPreconditionError` or `UnavailableError` says why."""
    client = s3_client(location)
    names = sorted(path.name for path in directory.iterdir() if path.is_file())
    if MANIFEST not in names:
        raise ModelFormatError(f"{directory}: no {MANIFEST}, so this is not a model artifact")
    contents = {name: measure(directory / name) for name in names}
    contents_json = contents_bytes(contents)
    sent: list[str] = []
    try:
        for name in [n for n in names if n != MANIFEST] + [CONTENTS, MANIFEST]:
            sent.append(name)  # before the call: a request that failed late may still have landed
            if name == CONTENTS:
                client.put_object(Bucket=location.bucket, Key=location.key(name), Body=contents_json)
            else:
                with open(directory / name, "rb") as fh:
                    client.put_object(Bucket=location.bucket, Key=location.key(name), Body=fh)
    except (ClientError, BotoCoreError) as err:
        remove(location, sent)
        message = f"cannot upload model {location.name} to {location.display}: {_describe(err)}"
        raise (UnavailableError(message) if _is_transient(err) else FailedPreconditionError(message)) from err
    return contents


def remove(location: S3Location, file_names: Iterable[str]) -> None:
    """Delete a version's objects, best effort (logged, never raised): the manifest first, so
    readers stop seeing a complete version before the rest goes."""
    client = s3_client(location)
    others = sorted((set(file_names) | {CONTENTS}) - {MANIFEST})
    try:
        client.delete_object(Bucket=location.bucket, Key=location.key(MANIFEST))
        client.delete_objects(
            Bucket=location.bucket, Delete={"Objects": [{"Key": location.key(n)} for n in others], "Quiet": True}
        )
    except (ClientError, BotoCoreError) as err:
        if _code(err) != "NoSuchBucket":  # then nothing was written either
            log.warning(
                "could not delete the objects of %s (delete them by hand): %s", location.display, _describe(err)
            )


def delete_version(location: S3Location) -> int:
    """Delete every object of the version at `location` (all keys under its prefix, listed, so
    leftovers of a failed upload go too), the manifest first so that no reader sees a complete
    version with files missing; returns how many were deleted. `UnavailableError` when S3 fails:
    whatever was deleted stays deleted, and calling again finishes the job."""
    client = s3_client(location)
    manifest = location.key(MANIFEST)
    try:
        keys = [
            item["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=location.bucket, Prefix=location.key("")
            )
            for item in page.get("Contents", [])
        ]
        keys.sort(key=lambda key: key != manifest)  # the manifest first
        listed = len(keys)
        if keys and keys[0] == manifest:
            client.delete_object(Bucket=location.bucket, Key=manifest)
            keys = keys[1:]
        for start in range(0, len(keys), DELETE_BATCH):
            answer = client.delete_objects(
                Bucket=location.bucket,
                Delete={"Objects": [{"Key": key} for key in keys[start : start + DELETE_BATCH]], "Quiet": True},
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise UnavailableError(
                    f"{location.display}: {len(answer['Errors'])} objects could not be deleted "
                    f"(first: {first.get('Key')}: {first.get('Code')})"
                )
    except (ClientError, BotoCoreError) as err:
        if _code(err) == "NoSuchBucket":
            return 0
        raise UnavailableError(f"{location.display}: could not delete the version: {_describe(err)}") from None
    return listed


def replace_files(location: S3Location, directory: Path, file_names: Iterable[str]) -> None:
    """Replace files of the complete version at `location` with those of the same names (and
    sizes) in `directory`, in the order given (an erasure's rewrite). First `contents.json`
    accepts both the old and the new content of each, then the objects are replaced, then it
    lists only the new ones, then older object versions a versioned bucket keeps of them are
    deleted. The version downloads at every point in between, and calling again after a
    failure finishes. `UnavailableError` or `FailedPreconditionError` when S3 refuses."""
    client = s3_client(location)
    names = list(dict.fromkeys(file_names))
    contents = read_contents(client, location)
    unknown = [name for name in names if name not in contents or name in (MANIFEST, CONTENTS)]
    if unknown:
        raise FailedPreconditionError(f"{location.display}: {', '.join(unknown)} is not a replaceable file of it")
    new = {name: measure(directory / name) for name in names}
    resized = [name for name in names if new[name].size != contents[name].size]
    if resized:  # `check` compares sizes only: a rewrite must keep them
        raise FailedPreconditionError(f"{location.display}: a rewrite must keep the size of {', '.join(resized)}")
    accepting_both = {
        **contents,
        **{
            name: replace(
                new[name],
                also=tuple(
                    dict.fromkeys(
                        sha for sha in (contents[name].sha256, *contents[name].also) if sha != new[name].sha256
                    )
                ),
            )
            for name in names
        },
    }
    try:
        _put_contents(client, location, accepting_both)
        for name in names:
            with open(directory / name, "rb") as fh:
                client.put_object(Bucket=location.bucket, Key=location.key(name), Body=fh)
        _put_contents(client, location, {**contents, **new})
    except (ClientError, BotoCoreError) as err:
        message = f"cannot rewrite model {location.name} in {location.display}: {_describe(err)}"
        raise (UnavailableError(message) if _is_transient(err) else FailedPreconditionError(message)) from err
    _forget_older_versions(client, location, [*names, CONTENTS])


def contents_bytes(contents: dict[str, FileEntry]) -> bytes:
    """`contents.json` listing `contents`."""
    return json.dumps({"files": {name: entry.to_json() for name, entry in sorted(contents.items())}}, indent=1).encode()


def _put_contents(client: S3Client, location: S3Location, contents: dict[str, FileEntry]) -> None:
    client.put_object(Bucket=location.bucket, Key=location.key(CONTENTS), Body=contents_bytes(contents))


def _forget_older_versions(client: S3Client, location: S3Location, names: list[str]) -> None:
    """Delete the noncurrent versions a versioned bucket keeps of the replaced objects: what
    was replaced must not stay retrievable. Without versioning there are none. Logged, never
    raised: a bucket policy may forbid it, and the operator must then expire them by lifecycle."""
    try:
        for name in names:
            key = location.key(name)
            for page in client.get_paginator("list_object_versions").paginate(Bucket=location.bucket, Prefix=key):
                for version in page.get("Versions", []):
                    if version["Key"] == key and not version.get("IsLatest", False):
                        client.delete_object(Bucket=location.bucket, Key=key, VersionId=version["VersionId"])
    except (ClientError, BotoCoreError) as err:
        log.warning(
            "could not delete older versions of the rewritten files of %s (expire them by a lifecycle rule): %s",
            location.display,
            _describe(err),
        )


def read_manifest(location: S3Location) -> dict[str, object]:
    """`manifest.json` of the complete version at `location`."""
    raw = _get_bytes(s3_client(location), location, MANIFEST)
    try:
        manifest = json.loads(raw)
    except ValueError as err:
        raise ModelFormatError(f"{location.display}/{MANIFEST}: unreadable JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise ModelFormatError(f"{location.display}/{MANIFEST}: not a JSON object")
    return manifest


def versions_written(location: S3Location) -> dict[str, float]:
    """Each version under `location` (the first path segment below its prefix) and when its
    newest object was written (epoch seconds). `UnavailableError` when S3 fails."""
    client = s3_client(location)
    base = location.key("")
    written: dict[str, float] = {}
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=base):
            for item in page.get("Contents", []):
                version = item["Key"][len(base) :].split("/", 1)[0]
                if FILE_NAME.fullmatch(version):
                    written[version] = max(written.get(version, 0.0), item["LastModified"].timestamp())
    except (ClientError, BotoCoreError) as err:
        if _code(err) == "NoSuchBucket":
            return {}
        raise UnavailableError(f"{location.display}: could not list the versions: {_describe(err)}") from None
    return written


# --- reading ------------------------------------------------------------------------------------


def check(location: S3Location) -> dict[str, FileEntry]:
    """The files of the version at `location`, after checking that its upload finished and that
    every file is in the bucket with its recorded size (HEAD requests only, nothing downloaded)."""
    client = s3_client(location)
    contents = read_contents(client, location)
    for name, entry in contents.items():
        uri = f"{location.display}/{name}"
        try:
            size = client.head_object(Bucket=location.bucket, Key=location.key(name))["ContentLength"]
        except (ClientError, BotoCoreError) as err:
            raise _read_error(err, uri) from err
        if size != entry.size:
            raise ModelFormatError(f"{uri}: {size} bytes, the upload wrote {entry.size} (truncated or replaced)")
    return contents


def download(location: S3Location, directory: Path) -> dict[str, FileEntry]:
    """Download the version at `location` into the empty `directory`, checking every file's size
    and SHA-256 against `contents.json` (files are written durably: the caller renames the
    directory into place); returns the contents."""
    client = s3_client(location)
    for restart in range(REWRITE_RESTARTS + 1):
        contents = read_contents(client, location)
        try:
            for name, entry in contents.items():
                _download_file(client, location, name, entry, directory / name)
            return contents
        except _ContentDiffers:  # a rewrite keeps sizes: only a changed content may be one
            if restart == REWRITE_RESTARTS or not _rewritten_since(client, location, contents):
                raise
            log.info("model %s was rewritten during its download (an erasure): downloading it again", location.name)
    raise AssertionError("unreachable")


def download_files(location: S3Location, directory: Path, file_names: Iterable[str]) -> dict[str, FileEntry]:
    """Download some files of the complete version at `location` into `directory`, checked
    against `contents.json` as `download` does; returns the version's contents. A file the
    version does not have is left out."""
    client = s3_client(location)
    contents = read_contents(client, location)
    for name in file_names:
        if name in contents:
            _download_file(client, location, name, contents[name], directory / name)
    return contents


def _rewritten_since(client: S3Client, location: S3Location, contents: dict[str, FileEntry]) -> bool:
    """Whether `contents.json` changes from `contents` within `REWRITE_SETTLE_S`: a file that
    differs from it was then replaced (`replace_files`), not damaged."""
    deadline = time.monotonic() + REWRITE_SETTLE_S
    while True:
        if read_contents(client, location) != contents:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


def read_contents(client: S3Client, location: S3Location) -> dict[str, FileEntry]:
    """`contents.json` of a version whose upload finished (its manifest is there)."""
    _get_bytes(client, location, MANIFEST)  # absent while an upload runs, or after one failed
    return parse_contents(_get_bytes(client, location, CONTENTS), f"{location.display}/{CONTENTS}")


def parse_contents(raw: bytes, uri: str) -> dict[str, FileEntry]:
    """The files a `contents.json` (read from `uri`) lists; `ModelFormatError` when malformed."""
    try:
        files = json.loads(raw)["files"]
        contents = {
            name: FileEntry(
                int(value["bytes"]), str(value["sha256"]), tuple(str(sha) for sha in value.get("also_sha256", ()))
            )
            for name, value in files.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ModelFormatError(f"{uri}: not a list of files with sizes and hashes ({err})") from None
    for name, entry in contents.items():
        hashes = (entry.sha256, *entry.also)
        if not FILE_NAME.fullmatch(name) or entry.size < 0 or not all(SHA256_HEX.fullmatch(sha) for sha in hashes):
            raise ModelFormatError(f"{uri}: bad entry {name!r}")
    if MANIFEST not in contents:
        raise ModelFormatError(f"{uri}: does not list {MANIFEST}")
    return contents


def _get_bytes(client: S3Client, location: S3Location, name: str) -> bytes:
    uri = f"{location.display}/{name}"
    try:
        return client.get_object(Bucket=location.bucket, Key=location.key(name))["Body"].read()
    except (ClientError, BotoCoreError) as err:
        if name == MANIFEST and _code(err) in ("NoSuchKey", "404"):
            raise ModelFormatError(
                f"{uri}: missing (the upload did not finish, or this is not a model artifact)"
            ) from err
        raise _read_error(err, uri) from err


def _download_file(client: S3Client, location: S3Location, name: str, entry: FileEntry, path: Path) -> None:
    uri = f"{location.display}/{name}"
    digest, size = hashlib.sha256(), 0
    try:
        body = client.get_object(Bucket=location.bucket, Key=location.key(name))["Body"]
        try:
            with open(path, "wb") as fh:
                for chunk in body.iter_chunks(CHUNK_BYTES):
                    size += len(chunk)
                    if size > entry.size:
                        break  # longer than uploaded: no need to fetch the rest
                    fh.write(chunk)
                    digest.update(chunk)
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            body.close()
    except (ClientError, BotoCoreError) as err:
        raise _read_error(err, uri) from err
    if size != entry.size:
        raise ModelFormatError(
            f"{uri}: {'more than ' if size > entry.size else ''}{size} bytes, the upload wrote {entry.size} (truncated or replaced)"
        )
    if digest.hexdigest() not in (entry.sha256, *entry.also):
        raise _ContentDiffers(f"{uri}: the content differs from what was uploaded (SHA-256 mismatch)")


# --- errors -------------------------------------------------------------------------------------


class _ContentDiffers(ModelFormatError):
    """A downloaded file's SHA-256 is not the one `contents.json` lists."""


def _code(err: Exception) -> str:
    return str(err.response.get("Error", {}).get("Code", "")) if isinstance(err, ClientError) else ""


def _is_transient(err: Exception) -> bool:
    if isinstance(err, (BotoConnectionError, HTTPClientError, IncompleteReadError, ResponseStreamingError)):
        return True
    if isinstance(err, ClientError):
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return _code(err) in TRANSIENT_CODES or status >= 500
    return False


def _describe(err: Exception) -> str:
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        code, message = error.get("Code", "error"), error.get("Message", "")
        return {"404": "not found", "403": "access denied"}.get(code, f"{code} ({message})" if message else code)
    return f"{type(err).__name__} ({err})"


def _read_error(err: Exception, uri: str) -> Exception:
    if _is_transient(err):
        return UnavailableError(f"{uri}: S3 is unavailable, try again later: {_describe(err)}")
    return ModelFormatError(f"{uri}: {_describe(err)}")
