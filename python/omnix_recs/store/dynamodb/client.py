"""The boto3 DynamoDB client the store talks through: one retry policy, batches done right.

Throttling, 5xx and connection errors are retried with exponential backoff and full jitter,
and so are the UnprocessedItems of BatchWriteItem and the UnprocessedKeys of BatchGetItem.
botocore's own retries are off (`client_from_url`), so `RetryPolicy` is the only one; when it
gives up the call raises `UnavailableError`, and a missing table asks for `omnix init-tables`.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError, NoRegionError
from botocore.exceptions import ConnectionError as BotoConnectionError

from omnix_recs.errors import FailedPreconditionError, InvalidArgumentError, UnavailableError
from omnix_recs.store.dynamodb.codec import encode_page_token
from omnix_recs.store.dynamodb.responses import parse_item_reads

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_R = TypeVar("_R")

BATCH_WRITE_MAX = 25  # BatchWriteItem's limit per request
BATCH_GET_MAX = 100  # BatchGetItem's limit per request
TRANSACTION_MAX = 25  # TransactWriteItems: moto and DynamoDB Local cap at 25 (AWS: 100)
FILTERED_READ = 256  # rows evaluated per Query when a filter may discard most of them
URL_PARAMETERS = ("region", "endpoint", "env")

# Error codes after which the same request may succeed later.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",  # too many concurrent control-plane operations
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
    }
)
# Reasons a transaction was cancelled that a retry can fix (a conflicting concurrent write...).
TRANSIENT_CANCELLATION_CODES = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})


def client_from_url(url: str, session: boto3.session.Session | None = None) -> tuple[Any, str]:
    """The boto3 client and the table set (`env`) named by a store URL (see `DynamoStore.from_url`)."""
    parts = urlsplit(url)
    if parts.scheme != "dynamodb" or parts.netloc or parts.path not in ("", "/") or parts.fragment:
        expected = "dynamodb://?region=...&endpoint=...&env=..."
        raise InvalidArgumentError("OMNIX_STORE", f"expected {expected}, got {url!r}")
    parameters: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in URL_PARAMETERS:
            known = ", ".join(URL_PARAMETERS)
            raise InvalidArgumentError("OMNIX_STORE", f"unknown parameter {name!r} (known: {known})")
        if name in parameters:
            raise InvalidArgumentError("OMNIX_STORE", f"parameter {name!r} given twice")
        parameters[name] = value
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},  # RetryPolicy is the one policy
        connect_timeout=3,
        read_timeout=20,
        max_pool_connections=32,  # server threads, read-ahead and import writers share it
    )
    try:
        client = (session or boto3.session.Session()).client(
            "dynamodb",
            region_name=parameters.get("region") or None,
            endpoint_url=parameters.get("endpoint") or None,
            config=config,
        )
    except NoRegionError:
        raise InvalidArgumentError("OMNIX_STORE", "no AWS region: add ?region=... or set AWS_REGION") from None
    except ValueError as error:  # a malformed endpoint URL
        raise InvalidArgumentError("OMNIX_STORE", str(error)) from None
    parse_item_reads(client)
    return client, parameters.get("env") or "dev"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter (the AWS Architecture Blog's recommendation)."""

    max_attempts: int = 8
    base_delay_s: float = 0.05
    max_delay_s: float = 2.0

    def delay_s(self, attempt: int) -> float:
        return random.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


class TableMissingError(FailedPreconditionError):
    """A table this store needs does not exist (run `omnix init-tables`)."""


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _cancellation_reasons(error: ClientError) -> set[str]:
    return {str(reason.get("Code")) for reason in error.response.get("CancellationReasons", [])}


def _is_transient(error: ClientError) -> bool:
    code = error_code(error)
    if code == "TransactionCanceledException":
        reasons = _cancellation_reasons(error)
        return bool(reasons & TRANSIENT_CANCELLATION_CODES) and "ConditionalCheckFailed" not in reasons
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return code in TRANSIENT_ERROR_CODES or status >= 500


def condition_failed(error: ClientError) -> bool:
    """A conditional write (or one inside a transaction) found its condition false."""
    code = error_code(error)
    return code == "ConditionalCheckFailedException" or (
        code == "TransactionCanceledException" and "ConditionalCheckFailed" in _cancellation_reasons(error)
    )


def _describe(error: Exception | None) -> str:
    if isinstance(error, ClientError):
        return error_code(error) or "error"
    return type(error).__name__


class DynamoClient:
    """A boto3 DynamoDB client with one retry policy and the batch operations done right."""

    def __init__(self, client: Any, retry: RetryPolicy) -> None:
        self.client = client
        self.retry = retry

    def call(self, operation: str, **parameters: Any) -> dict[str, Any]:
        """`client.<operation>(**parameters)`, retrying throttling and transient failures."""
        method = getattr(self.client, operation)
        last_error: Exception | None = None
        for attempt in range(self.retry.max_attempts):
            if attempt:
                time.sleep(self.retry.delay_s(attempt - 1))
            try:
                response: dict[str, Any] = method(**parameters)
                return response
            except ClientError as error:
                if error_code(error) == "ResourceNotFoundException":
                    table = parameters.get("TableName") or ", ".join(parameters.get("RequestItems", {}))
                    message = f"DynamoDB table {table or '?'} is missing: run `omnix init-tables`"
                    raise TableMissingError(message) from error
                if not _is_transient(error):
                    raise
                last_error = error
            except (BotoConnectionError, HTTPClientError) as error:
                last_error = error
            log.debug("DynamoDB %s attempt %d failed: %s", operation, attempt + 1, last_error)
        raise UnavailableError(
            f"DynamoDB is unavailable: {operation} failed {self.retry.max_attempts} times "
            f"(last: {_describe(last_error)})"
        ) from last_error

    def transact_puts(self, puts: Sequence[tuple[str, dict[str, Any], str | None]]) -> None:
        """(table, item, condition or None) written atomically, at most `TRANSACTION_MAX`."""
        actions = []
        for table, item, condition in puts:
            put: dict[str, Any] = {"TableName": table, "Item": item}
            if condition:
                put["ConditionExpression"] = condition
            actions.append({"Put": put})
        # The token makes a retried call (after a lost response) a no-op, not a second write.
        self.call("transact_write_items", TransactItems=actions, ClientRequestToken=str(uuid.uuid4()))

    def batch_write(self, requests: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Write (table, PutRequest/DeleteRequest) pairs, 25 per call, retrying unprocessed ones.

        A key must appear at most once per 25 requests (DynamoDB refuses duplicates in one call).
        """
        for start in range(0, len(requests), BATCH_WRITE_MAX):
            pending: dict[str, list[dict[str, Any]]] = {}
            for table, request in requests[start : start + BATCH_WRITE_MAX]:
                pending.setdefault(table, []).append(request)
            self._until_processed("batch_write_item", pending, "UnprocessedItems", lambda response: None)

    def batch_get(self, table: str, keys: Sequence[Mapping[str, Any]], **options: Any) -> list[dict[str, Any]]:
        """The items that exist among `keys` (distinct), 100 per call, retrying unprocessed ones."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET_MAX):
            pending = {table: {"Keys": list(keys[start : start + BATCH_GET_MAX]), **options}}
            self._until_processed(
                "batch_get_item",
                pending,
                "UnprocessedKeys",
                lambda response: found.extend(response.get("Responses", {}).get(table, [])),
            )
        return found

    def _until_processed(
        self,
        operation: str,
        request_items: dict[str, Any],
        unprocessed_field: str,
        on_response: Callable[[dict[str, Any]], None],
    ) -> None:
        # DynamoDB returns what it could not do (throttled partitions) instead of failing the
        # call; back off and send only that part again.
        for attempt in range(self.retry.max_attempts):
            if attempt:
                time.sleep(self.retry.delay_s(attempt - 1))
            response = self.call(operation, RequestItems=request_items)
            on_response(response)
            request_items = response.get(unprocessed_field) or {}
            if not request_items:
                return
        left = sum(len(r) if isinstance(r, list) else len(r["Keys"]) for r in request_items.values())
        raise UnavailableError(
            f"DynamoDB is unavailable: {operation} left {left} requests unprocessed "
            f"after {self.retry.max_attempts} attempts"
        )

    def items(self, operation: str, **parameters: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Query or Scan, following LastEvaluatedKey."""
        while True:
            response = self.call(operation, **parameters)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            parameters["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def first(self, operation: str, parameters: Mapping[str, Any], count: int) -> list[dict[str, Any]]:
        """The first `count` items of a Query or Scan."""
        request = dict(parameters)
        found: list[dict[str, Any]] = []
        while len(found) < count:
            response = self.call(operation, **request, Limit=count - len(found))
            found.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found

    def page(
        self,
        operation: str,
        parameters: Mapping[str, Any],
        size: int,
        start_key: dict[str, Any] | None,
        key_attributes: Sequence[str],
        filtered: bool = False,
    ) -> tuple[list[dict[str, Any]], str]:
        """Up to `size` items and the token for the rest ("" when there is no more).

        Reads one item beyond the page so that the last page says so; the token is the key of
        the last item served, not DynamoDB's LastEvaluatedKey, so it is exact even when a
        filter made DynamoDB read further than the page.
        """
        request = dict(parameters)
        if start_key is not None:
            request["ExclusiveStartKey"] = start_key
        found: list[dict[str, Any]] = []
        while True:
            wanted = size + 1 - len(found)
            request["Limit"] = max(wanted, FILTERED_READ) if filtered else wanted
            response = self.call(operation, **request)
            found.extend(response.get("Items", []))
            if len(found) > size or "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        if len(found) <= size:
            return found, ""
        del found[size:]
        return found, encode_page_token(found[-1], key_attributes)

    def parallel_scan(self, segments: int, **parameters: Any) -> Iterator[dict[str, Any]]:
        """Scan responses from `segments` parallel segments, one request in flight per segment."""
        with ThreadPoolExecutor(max_workers=segments, thread_name_prefix="omnix-dynamo-scan") as pool:

            def scan(segment: int, start_key: dict[str, Any] | None) -> Future[dict[str, Any]]:
                extra = {"ExclusiveStartKey": start_key} if start_key else {}
                return pool.submit(self.call, "scan", Segment=segment, TotalSegments=segments, **parameters, **extra)

            in_flight = {scan(segment, None): segment for segment in range(segments)}
            try:
                while in_flight:
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        segment = in_flight.pop(future)
                        response = future.result()
                        if "LastEvaluatedKey" in response:
                            in_flight[scan(segment, response["LastEvaluatedKey"])] = segment
                        yield response
            finally:
                for future in in_flight:  # closed early: what has not started never will
                    future.cancel()


def prefetched(pool: ThreadPoolExecutor, work: Callable[[_T], _R], inputs: Iterable[_T], depth: int) -> Iterator[_R]:
    """`map(work, inputs)` in order, with up to `depth` calls running ahead on `pool`."""
    ahead: deque[Future[_R]] = deque()
    try:
        for value in inputs:
            ahead.append(pool.submit(work, value))
            if len(ahead) >= depth:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()
    finally:
        for future in ahead:
            future.cancel()
