"""Persistence: the `Store` protocol and its implementations."""

from omnix_recs.store.base import ModelRecord, PurchaseColumns, Store, open_store

__all__ = ["ModelRecord", "PurchaseColumns", "Store", "open_store"]
