"""The SQLite store's schema and how it evolves: an ordered list of migrations and their runner.

Databases outlive the code that wrote them, so a released migration is never edited: a change
is a new entry at the end of `MIGRATIONS`, applied in order, each in its own transaction (a
failure leaves the previous version), and a database written by newer code is refused rather
than guessed at. Tables mirror the seed's DynamoDB tables (DESIGN.md "Data"); composite-keyed
ones are WITHOUT ROWID so a customer's rows sit together, and there are no foreign keys because
an import may write purchase history before (or without) a profile.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from omnix_recs.errors import FailedPreconditionError


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step. Conventions of the statements: timestamps are INTEGER microseconds since
    the Unix epoch, UTC; lists and nested value objects are JSON text."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        description="the seed's tables with indexes serving its GSIs, plus models and documents",
        statements=(
            """
            CREATE TABLE customer_profiles (
                customer_id TEXT NOT NULL PRIMARY KEY,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                display_name TEXT NOT NULL,
                email TEXT NOT NULL,
                age_band TEXT NOT NULL,
                household_size INTEGER NOT NULL,
                postcode TEXT NOT NULL,
                preferences TEXT NOT NULL,
                dietary_restrictions TEXT NOT NULL,
                allergens TEXT NOT NULL,
                consent TEXT NOT NULL
            ) WITHOUT ROWID
            """,
            """
            CREATE TABLE products (
                product_id TEXT NOT NULL PRIMARY KEY,
                name TEXT NOT NULL,
                department TEXT NOT NULL,
                aisle TEXT NOT NULL,
                brand TEXT NOT NULL,
                price REAL NOT NULL,
                pack_size TEXT NOT NULL,
                dietary_tags TEXT NOT NULL,
                allergens TEXT NOT NULL,
                in_stock INTEGER NOT NULL,
                updated_at INTEGER
            ) WITHOUT ROWID
            """,
            "CREATE INDEX products_by_department_aisle ON products (department, aisle)",
            "CREATE INDEX products_by_brand ON products (brand)",
            """
            CREATE TABLE purchase_history (
                customer_id TEXT NOT NULL,
                purchased_at INTEGER NOT NULL,
                order_id TEXT NOT NULL,
                product_id TEXT NOT NULL,
                quantity INTEGER NOT NULL,
                unit_price REAL NOT NULL,
                PRIMARY KEY (customer_id, purchased_at, order_id, product_id)
            ) WITHOUT ROWID
            """,
            "CREATE INDEX purchases_by_product ON purchase_history (product_id, purchased_at)",
            """
            CREATE TABLE product_interactions (
                customer_id TEXT NOT NULL,
                occurred_at INTEGER NOT NULL,
                interaction_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                product_id TEXT NOT NULL,
                query TEXT NOT NULL,
                quantity INTEGER NOT NULL,
                PRIMARY KEY (customer_id, occurred_at, interaction_id)
            ) WITHOUT ROWID
            """,
            "CREATE INDEX interactions_by_product ON product_interactions (product_id, occurred_at)",
            # Served lists carry up to a few hundred items with reasons: rows of several KB,
            # which SQLite keeps best in an ordinary rowid table.
            """
            CREATE TABLE recommendations (
                recommendation_id TEXT NOT NULL PRIMARY KEY,
                customer_id TEXT NOT NULL,
                generated_at INTEGER NOT NULL,
                strategy TEXT NOT NULL,
                model_version TEXT NOT NULL,
                items TEXT NOT NULL
            )
            """,
            "CREATE INDEX recommendations_by_customer"
            " ON recommendations (customer_id, generated_at, recommendation_id)",
            """
            CREATE TABLE feedback (
                recommendation_id TEXT NOT NULL,
                occurred_at INTEGER NOT NULL,
                product_id TEXT NOT NULL,
                event TEXT NOT NULL,
                customer_id TEXT NOT NULL,
                PRIMARY KEY (recommendation_id, occurred_at, product_id, event)
            ) WITHOUT ROWID
            """,
            "CREATE INDEX feedback_by_customer ON feedback (customer_id, occurred_at)",
            """
            CREATE TABLE models (
                version TEXT NOT NULL PRIMARY KEY,
                created_at INTEGER NOT NULL,
                artifact_uri TEXT NOT NULL,
                metrics TEXT NOT NULL,
                notes TEXT NOT NULL,
                active INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1))
            )
            """,
            "CREATE INDEX models_by_created_at ON models (created_at)",
            # The database itself guarantees at most one active model version.
            "CREATE UNIQUE INDEX models_single_active ON models (active) WHERE active = 1",
            """
            CREATE TABLE documents (
                customer_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (customer_id, kind, created_at)
            )
            """,
            "CREATE INDEX documents_by_kind ON documents (kind, created_at, customer_id)",
        ),
    ),
    Migration(
        version=2,
        description="catalog version: a counter every product write bumps (serving's snapshot check)",
        statements=(
            "CREATE TABLE catalog_version (id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
            "INSERT INTO catalog_version (id, version) VALUES (1, 0)",
            # Triggers, so every path that writes products (upserts, import sessions, migrations
            # to come) bumps it in the same transaction as the write.
            *(
                f"CREATE TRIGGER products_{event.lower()}_bumps_catalog_version AFTER {event} ON products"
                " BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END"
                for event in ("INSERT", "UPDATE", "DELETE")
            ),
        ),
    ),
    Migration(
        version=3,
        description="experiments; served lists record their experiment and arm, and are read by time",
        statements=(
            """
            CREATE TABLE experiments (
                experiment_id TEXT NOT NULL PRIMARY KEY,
                surface TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                stopped_at INTEGER,
                body TEXT NOT NULL
            )
            """,
            # The database itself allows one running experiment per surface.
            "CREATE UNIQUE INDEX experiments_one_running_per_surface ON experiments (surface) WHERE stopped_at IS NULL",
            "ALTER TABLE recommendations ADD COLUMN experiment_id TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE recommendations ADD COLUMN arm_id TEXT NOT NULL DEFAULT ''",
            # Experiment results and the reports read lists by experiment and by period.
            "CREATE INDEX recommendations_by_experiment ON recommendations (experiment_id, generated_at)",
            "CREATE INDEX recommendations_by_time ON recommendations (generated_at)",
        ),
    ),
    Migration(
        version=4,
        description="independent experiments share a surface; served lists record every experiment; "
        "purchases are read by time",
        statements=(
            # One running experiment per surface among those not declared independent.
            "DROP INDEX IF EXISTS experiments_one_running_per_surface",
            "CREATE UNIQUE INDEX experiments_one_running_per_surface ON experiments (surface)"
            " WHERE stopped_at IS NULL AND coalesce(json_extract(body, '$.independent'), 0) = 0",
            # A JSON object {experiment: arm} of the lists' other experiments; '' when none.
            "ALTER TABLE recommendations ADD COLUMN other_assignments TEXT NOT NULL DEFAULT ''",
            # The reports read one period's purchases.
            "CREATE INDEX purchases_by_time ON purchase_history (purchased_at)",
        ),
    ),
    Migration(
        version=5,
        description="purchase journal and epoch: what the training snapshot reads to stay fresh",
        statements=(
            # The lines `add_purchases` writes (recorded purchases), so a copy of the history can
            # add them instead of reading everything again; trimmed to the newest lines.
            """
            CREATE TABLE purchase_journal (
                sequence INTEGER PRIMARY KEY AUTOINCREMENT,
                customer_id TEXT NOT NULL,
                purchased_at INTEGER NOT NULL,
                order_id TEXT NOT NULL,
                product_id TEXT NOT NULL,
                quantity INTEGER NOT NULL,
                unit_price REAL NOT NULL
            )
            """,
            "CREATE INDEX purchase_journal_by_customer ON purchase_journal (customer_id)",
            # Bumped by the writes the journal does not hold (imports, erasures).
            "CREATE TABLE purchase_epoch (id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL)",
            "INSERT INTO purchase_epoch (id, epoch) VALUES (1, 0)",
        ),
    ),
    Migration(
        version=6,
        description="purchases record the store they were bought in ('' = not known)",
        statements=("ALTER TABLE purchase_history ADD COLUMN store_id TEXT NOT NULL DEFAULT ''",),
    ),
    Migration(
        version=7,
        description="leases: admin work one process at a time across processes sharing the store",
        statements=(
            "CREATE TABLE leases (name TEXT NOT NULL PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL)",
        ),
    ),
)


def schema_version(conn: sqlite3.Connection) -> int:
    """The highest migration applied to this database (0 for a new one)."""
    (version,) = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(version)


def apply_migrations(conn: sqlite3.Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Bring the database up to the last of `migrations`; returns the resulting version.

    `conn` must be in autocommit mode (`isolation_level=None`): this function owns the
    transactions. Safe when several processes open the same new database at once: each
    migration re-reads the version under the write lock before applying itself.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER NOT NULL PRIMARY KEY,"
        " applied_at INTEGER NOT NULL,"
        " description TEXT NOT NULL)"
    )
    latest = migrations[-1].version if migrations else 0
    current = schema_version(conn)
    if current > latest:
        raise FailedPreconditionError(
            f"the database is at schema version {current}, newer than this omnix understands "
            f"(up to {latest}); upgrade omnix or point OMNIX_STORE at another database"
        )
    for migration in migrations:
        if migration.version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = schema_version(conn)
            if migration.version > current:
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at, description) VALUES (?, ?, ?)",
                    (migration.version, time.time_ns() // 1000, migration.description),
                )
                current = migration.version
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return current
