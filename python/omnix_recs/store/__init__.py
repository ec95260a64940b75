"""Persistence: the `Store` protocol, its implementations, and the URL that picks one.

`open_store` lives here, above `base` and both implementations, so that the protocol never
imports what implements it. Each implementation is imported only when a URL asks for it, so
opening a SQLite store does not import boto3.
"""

from datetime import timedelta

from omnix_recs.errors import InvalidArgumentError
from omnix_recs.store.base import ModelRecord, Store


def open_store(url: str, *, served_list_retention: timedelta | None = None) -> Store:
    """Open the store named by an `OMNIX_STORE` URL (`sqlite:///path` or `dynamodb://?...`).
    `served_list_retention`: `Settings.served_list_retention` where served lists are written or
    read (see `Store.served_list_retention`); None keeps and returns them all."""
    if url.startswith("sqlite://"):
        from omnix_recs.store.sqlite import SqliteStore

        return SqliteStore.from_url(url, served_list_retention=served_list_retention)
    if url.startswith("dynamodb://"):
        try:
            from omnix_recs.store.dynamodb import DynamoStore
        except ImportError:
            raise InvalidArgumentError("OMNIX_STORE", "the DynamoDB store is not available in this build") from None
        return DynamoStore.from_url(url, served_list_retention=served_list_retention)
    raise InvalidArgumentError("OMNIX_STORE", f"unknown store URL scheme in {url!r} (use sqlite:/// or dynamodb://)")


__all__ = ["ModelRecord", "Store", "open_store"]
