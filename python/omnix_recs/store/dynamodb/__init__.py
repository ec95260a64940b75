"""The DynamoDB store: the `Store` protocol over the seed's DynamoDB tables, through boto3.

Selected by `OMNIX_STORE=dynamodb://?region=us-east-1&endpoint=http://127.0.0.1:8000&env=dev`
(`endpoint` unset = AWS's regional endpoint; `env` picks the table set, default `dev`;
credentials come from the usual AWS chain). `create_tables()` (`omnix init-tables`) creates
whatever table or index is missing, on-demand billing, and waits until it is ACTIVE.

Tables `omnix-ai-<table>-<env>` and their keys
----------------------------------------------
Timestamps in keys are ISO-8601 UTC with microseconds at a fixed width
(`2024-03-01T08:15:00.000000Z`), so string order is time order. Ids inside composite sort
keys have `%` and `#` percent-escaped, so `#` separates the parts unambiguously.

    customer-profiles     customerId                        customerId-updatedAt-index*
                                                            listing-customerId-index
    purchase-history      customerId + sk                   customerId-purchaseDate-index*
                          sk = purchaseDate#orderId#productId productId-purchaseDate-index*
                          (+ one "#history" row per customer) listing-customerId-index
    product-interactions  customerId + sk timestamp#interactionId
                                                            customerId-timestamp-index*
                                                            productId-timestamp-index*
    recommendations       customerId + sk generatedAt#recommendationId
                                                            customerId-generatedAt-index*
    recommendation-ids    recommendationId -> the list's key in `recommendations`
    products              productId                         category-index (department, productId)
                                                            listing-productId-index
    feedback              recommendationId + sk occurredAt#productId#event
                                                            customerId-occurredAt-index
    models                version (+ one "#active" row naming the active version, and one
                          "#catalog" row counting catalog writes)
    documents             customerId + sk kind#createdAt    kind-createdAt-index

Indexes marked * are the seed's, kept KEYS_ONLY for the seed's readers; our reads use the base
tables, which sort by the same attributes. Why the others:
- `listing-*-index`: the protocol lists customers and products in id order, which a Scan
  (hash order) cannot give. Rows carry a constant `listing` attribute ("customers",
  "catalog", "purchasers"), and the index on (listing, id) is that ordered list. One index
  partition per listing: fine for tens of thousands of products and a few hundred thousand
  customers (imports write them at most ~1,000 rows/s, the partition's limit).
- The `#history` row marks a customer who has purchases (sparse: only it has `listing`), so
  `scan_purchases` can walk histories by customer id and time, as the protocol wants, without
  holding the table in memory. Every purchase query starts its sort key at "0", after "#".
- `recommendation-ids` is written in the same transaction as the list, with
  attribute_not_exists: that is what makes recommendation ids unique (an index cannot refuse
  a duplicate) and lets `get_recommendation` read consistently (an index cannot).
- `category-index` serves the common one-department listing without a filter.

Floats are DynamoDB numbers (`Decimal(repr(x))`, which reads back as the same float);
free-form maps (model metrics, document bodies) are JSON text, as in the SQLite store, so
ints, floats and NaN round-trip exactly.

Consistency: base-table reads are strongly consistent. Reads through an index
(`list_customer_ids`, `list_products`, `iter_products`, `list_documents`, the customer order of
`scan_purchases`, finding a customer's feedback to erase it) are eventually consistent, as every
DynamoDB GSI is: on AWS a row written a moment ago may be missing for a fraction of a second.

Failures: throttling (ProvisionedThroughputExceeded, Throttling, RequestLimitExceeded), 5xx and
connection errors are retried with exponential backoff and full jitter; so are the
UnprocessedItems of BatchWriteItem and the UnprocessedKeys of BatchGetItem. After
`RetryPolicy.max_attempts` the call raises `UnavailableError`. botocore's own retries are off, so
this is the single retry policy. A missing table is a `FailedPreconditionError` telling the
operator to run `omnix init-tables`.

Multi-row writes and imports: what is guaranteed
------------------------------------------------
DynamoDB has no transaction larger than 25 items (moto's and DynamoDB Local's limit; AWS's is
100), so the protocol's "a bulk write becomes visible whole" holds only for small writes:

* Writes of up to 25 rows (`add_purchases`, `upsert_products`: one order, one catalog edit;
  a customer's `#history` row counts) are one TransactWriteItems: atomic and visible at once.
* Larger writes and every `import_session()` are validated row by row before the row is sent,
  then written in BatchWriteItem chunks. Guarantees:
  1. Idempotent. Every key is derived from the row itself (customer, time, order, product...),
     so importing the same data again rewrites identical rows: nothing changes. A failed or
     interrupted import, run again to the end, converges to exactly the state of one clean run.
  2. Undone on failure. Before each chunk is written, the session reads (consistently) the
     rows it is about to overwrite and appends their previous images (or "absent") to an undo
     journal in a local temporary file. When the import fails (an exception leaves the `with`
     block, a chunk cannot be written after the retries) or is abandoned (the block ends
     without `commit()`), the journal is replayed newest first: rows the session created are
     deleted, rows it overwrote get their old values back. Then nothing of the import remains.
  3. Not promised: isolation. Rows are visible to readers as their chunks land, before
     `commit()`; a reader during an import may see part of it. The undo assumes the import is
     the only writer of the rows it touches (true for history and catalog loads); if the
     process itself dies (kill -9, power loss) nothing is undone and guarantee 1 is the
     remedy: run the import again.
  The undo journal costs one consistent read per written row and a temporary file of about
  11 bytes per new order line, 25 per overwritten one (zlib-compressed keys and old images).
Erasure (`delete_customer`) is likewise not one transaction: it deletes the derived rows first
and the profile last, so an erasure cut short is finished by calling it again.

Modules
-------
    tables   the table and index definitions above, and creating them (`omnix init-tables`)
    codec    domain objects <-> items, key encodings, page tokens, expression placeholders
    client   the boto3 client from the URL; retries, batch get/write, paging, parallel scans
    imports  the undo-journaled import session (large writes)
    store    `DynamoStore`, the protocol's methods over the above
"""

from omnix_recs.store.dynamodb.client import RetryPolicy, TableMissingError
from omnix_recs.store.dynamodb.imports import DynamoImportSession
from omnix_recs.store.dynamodb.store import DynamoStore
from omnix_recs.store.dynamodb.tables import TABLES, table_name

__all__ = ["TABLES", "DynamoImportSession", "DynamoStore", "RetryPolicy", "TableMissingError", "table_name"]
