"""The embedded store: the `Store` protocol over one SQLite file, through the standard library.

The product's default, selected by `OMNIX_STORE=sqlite:///path`: a developer or a one-machine
shop needs no database server, and an import is one transaction. Modules: `schema` (tables and
versioned migrations), `rows` (how entities map to rows and statements), `store`
(`SqliteStore`, connections, transactions and queries).
"""

from omnix_recs.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
