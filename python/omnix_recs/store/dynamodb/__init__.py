"""The DynamoDB store: the `Store` protocol over the seed's DynamoDB tables, through boto3.

Selected by `OMNIX_STORE=dynamodb://?region=...&endpoint=...&env=...`; `omnix init-tables`
creates the tables. DynamoDB's transactions are far smaller than an import, so large writes are
made idempotent by their keys and undone from a journal when they fail (`imports`). Modules:
`tables` (tables, indexes, creating them), `codec` (items, keys, page tokens), `client` (the one
retry policy, batches, paging), `imports` (large writes), `store` (`DynamoStore`).
"""

from omnix_recs.store.dynamodb.client import RetryPolicy, TableMissingError
from omnix_recs.store.dynamodb.imports import DynamoImportSession
from omnix_recs.store.dynamodb.store import DynamoStore
from omnix_recs.store.dynamodb.tables import TABLES, table_name

__all__ = ["TABLES", "DynamoImportSession", "DynamoStore", "RetryPolicy", "TableMissingError", "table_name"]
