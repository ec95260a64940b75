"""CustomerService: profiles, purchases, behaviour, bulk import, export and erasure.

Each RPC validates its request (through `api.mapping`), runs one store operation in a worker
thread, tells `AppContext.on_customer_activity` when a customer's data changed (so caches of
their recommendations are dropped), and maps the result back to protobuf.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import AsyncIterator, Callable, Sequence

import grpc

from omnix_recs.api import mapping
from omnix_recs.api import validation as check
from omnix_recs.api.validation import Validator
from omnix_recs.app import AppContext
from omnix_recs.domain.models import ALLERGENS, CART_KINDS, DIETARY_TAGS, Customer, CustomerChange, Purchase
from omnix_recs.errors import ConflictError, InvalidArgumentError, NotFoundError
from omnix_recs.store.base import Store
from omnix_recs._proto.omnix.v1 import customer_pb2, customer_pb2_grpc

SERVICE_NAME = customer_pb2.DESCRIPTOR.services_by_name["CustomerService"].full_name
EXPORT_FORMAT_VERSION = 1
# Conditional profile writes that lost a race are retried this often before ABORTED.
UPDATE_ATTEMPTS = 5
# Rows one ImportPurchases call may carry. They are held in memory until the whole stream is
# validated (≈ 300 bytes each), so the bound keeps a call's footprint in the tens of MB.
MAX_IMPORT_ROWS = 100_000
# Order lines one RecordPurchases call may carry: far more than any real basket.
MAX_BASKET_LINES = 1_000
# "No limit" for the store's list calls when exporting everything about a customer.
_EVERYTHING = 1_000_000_000


def register(server: grpc.aio.Server, app: AppContext) -> list[str]:
    customer_pb2_grpc.add_CustomerServiceServicer_to_server(CustomerServicer(app), server)
    return [SERVICE_NAME]


def _now() -> datetime:
    return datetime.now(timezone.utc)


class CustomerServicer(customer_pb2_grpc.CustomerServiceServicer):
    def __init__(self, app: AppContext) -> None:
        self.app = app
        self.store = app.store
        self.v = Validator(app.settings.limits)

    async def RegisterCustomer(self, request, context):
        now = _now()
        customer_id = self.v.optional_id("customer_id", request.customer_id) or uuid.uuid4().hex
        customer = mapping.customer_from_register(self.v, request, customer_id=customer_id, now=now)
        await asyncio.to_thread(self.store.create_customer, customer)
        return mapping.customer_to_proto(customer)

    async def GetCustomerProfile(self, request, context):
        customer_id = self.v.require_id("customer_id", request.customer_id)
        customer = await asyncio.to_thread(self.store.get_customer, customer_id)
        return mapping.customer_to_proto(customer)

    async def UpdatePreferences(self, request, context):
        customer_id = self.v.require_id("customer_id", request.customer_id)
        paths = list(request.update_mask.paths)
        for i, path in enumerate(paths):
            if path not in mapping.PREFERENCE_FIELDS:
                raise InvalidArgumentError(
                    f"update_mask.paths[{i}]",
                    f"unknown field {path!r} (fields: {', '.join(mapping.PREFERENCE_FIELDS)})",
                )
        given = mapping.preferences_from_proto(self.v, "preferences", request.preferences)

        def change(customer: Customer) -> Customer:
            preferences = given
            if paths:  # only the named fields; an empty mask replaces the whole preferences
                preferences = dataclasses.replace(customer.preferences, **{p: getattr(given, p) for p in paths})
            return dataclasses.replace(customer, preferences=preferences)

        updated = await asyncio.to_thread(_update_customer, self.store, customer_id, change)
        self.app.on_customer_activity(customer_id)
        return mapping.customer_to_proto(updated)

    async def SetDietaryRestrictions(self, request, context):
        customer_id = self.v.require_id("customer_id", request.customer_id)
        restrictions = check.vocabulary(
            "restrictions", request.restrictions, DIETARY_TAGS, max_items=mapping.MAX_DIETARY_ENTRIES
        )
        allergens = check.vocabulary("allergens", request.allergens, ALLERGENS, max_items=mapping.MAX_DIETARY_ENTRIES)

        def change(customer: Customer) -> Customer:
            return dataclasses.replace(customer, dietary_restrictions=restrictions, allergens=allergens)

        updated = await asyncio.to_thread(_update_customer, self.store, customer_id, change)
        self.app.on_customer_activity(customer_id)
        return mapping.customer_to_proto(updated)

    async def ListPurchases(self, request, context):
        customer_id = self.v.require_id("customer_id", request.customer_id)
        page_size = self.v.page_size("page_size", request.page_size)
        page_token = self.v.page_token("page_token", request.page_token)
        start = check.timestamp("start_time", request, "start_time", required=False)
        end = check.timestamp("end_time", request, "end_time", required=False)
        check.time_range("start_time", start, "end_time", end)
        page = await asyncio.to_thread(self.store.list_purchases, customer_id, page_size, page_token, start, end)
        return customer_pb2.ListPurchasesResponse(
            purchases=[mapping.purchase_to_proto(p) for p in page.items], next_page_token=page.next_page_token
        )

    async def RecordPurchase(self, request, context):
        customer_id = self.v.require_id("customer_id", request.customer_id)
        if not request.HasField("purchase"):
            raise InvalidArgumentError("purchase", "is required")
        purchase = mapping.purchase_from_proto(self.v, "purchase", customer_id, request.purchase, now=_now())
        (stored,) = await self._record(customer_id, [purchase])
        return customer_pb2.RecordPurchaseResponse(purchase=mapping.purchase_to_proto(stored))

    async def RecordPurchases(self, request, context):
        customer_id = self.v.require_id("customer_id", request.customer_id)
        self.v.batch("purchases", request.purchases, maximum=MAX_BASKET_LINES)
        now = _now()
        purchases = [
            mapping.purchase_from_proto(self.v, f"purchases[{i}]", customer_id, line, now=now)
            for i, line in enumerate(request.purchases)
        ]
        stored = await self._record(customer_id, purchases)
        return customer_pb2.RecordPurchasesResponse(purchases=[mapping.purchase_to_proto(p) for p in stored])

    async def _record(self, customer_id: str, purchases: list[Purchase]) -> list[Purchase]:
        def write() -> list[Purchase]:
            self.store.get_customer(customer_id)  # NotFoundError for unregistered customers
            priced = _with_catalog_prices(self.store, purchases)
            self.store.add_purchases(priced)
            return priced

        stored = await asyncio.to_thread(write)
        self.app.on_customer_activity(customer_id)
        return stored

    async def RecordInteraction(self, request, context):
        customer_id = self.v.require_id("customer_id", request.customer_id)
        if not request.HasField("interaction"):
            raise InvalidArgumentError("interaction", "is required")
        interaction = mapping.interaction_from_proto(
            self.v, "interaction", customer_id, request.interaction, interaction_id=uuid.uuid4().hex, now=_now()
        )

        def write() -> None:
            self.store.get_customer(customer_id)  # NotFoundError for unregistered customers
            self.store.add_interaction(interaction)

        await asyncio.to_thread(write)
        change = CustomerChange.CART if interaction.kind in CART_KINDS else CustomerChange.BROWSING
        self.app.on_customer_activity(customer_id, change)
        return mapping.interaction_to_proto(interaction)

    async def ImportPurchases(self, request_iterator: AsyncIterator[customer_pb2.ImportPurchasesRow], context):
        try:
            purchases, first_row_of = await self._read_import(request_iterator)
            written = await asyncio.to_thread(_import_purchases, self.store, purchases, first_row_of)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(exc.field, f"{exc.message} (nothing was imported)") from None
        for customer_id in first_row_of:
            self.app.on_customer_activity(customer_id)
        return customer_pb2.ImportPurchasesResponse(
            rows_received=len(purchases), customers=len(first_row_of), rows_written=written
        )

    async def _read_import(
        self, rows: AsyncIterator[customer_pb2.ImportPurchasesRow]
    ) -> tuple[list[Purchase], dict[str, int]]:
        """Every row, validated; stops at the first bad one. Also where each customer first
        appears, to name that row if the customer turns out not to be registered."""
        now = _now()
        purchases: list[Purchase] = []
        first_row_of: dict[str, int] = {}
        index = 0
        async for row in rows:
            if index == MAX_IMPORT_ROWS:
                raise InvalidArgumentError("rows", f"at most {MAX_IMPORT_ROWS} rows per call; split the import")
            customer_id = self.v.require_id(f"rows[{index}].customer_id", row.customer_id)
            if not row.HasField("purchase"):
                raise InvalidArgumentError(f"rows[{index}].purchase", "is required")
            purchases.append(
                mapping.purchase_from_proto(self.v, f"rows[{index}].purchase", customer_id, row.purchase, now=now)
            )
            first_row_of.setdefault(customer_id, index)
            index += 1
        if not purchases:
            raise InvalidArgumentError("rows", "the stream is empty; send at least one row")
        return purchases, first_row_of

    async def ExportCustomerData(self, request, context):
        customer_id = self.v.require_id("customer_id", request.customer_id)
        await asyncio.to_thread(self.app.write_served_lists)  # the export includes lists just served
        return await asyncio.to_thread(_export, self.store, customer_id)

    async def DeleteCustomer(self, request, context):
        customer_id = self.v.require_id("customer_id", request.customer_id)
        await asyncio.to_thread(self.app.write_served_lists)  # none may be written after the erasure
        erasure = await asyncio.to_thread(self.store.delete_customer, customer_id)
        self.app.on_customer_activity(customer_id)
        return customer_pb2.DeleteCustomerResponse(erased=erasure.counts)


# --- store work, run in a worker thread -------------------------------------------------------


def _update_customer(store: Store, customer_id: str, change: Callable[[Customer], Customer]) -> Customer:
    """Read, change, write only if nobody wrote in between (else read again): two updates of
    one profile at once, from any processes, both count; neither overwrites the other's change."""
    for attempt in range(UPDATE_ATTEMPTS):
        customer = store.get_customer(customer_id)
        # Strictly later than what it replaces, so the next conditional write sees a change.
        updated_at = max(_now(), customer.updated_at + timedelta(microseconds=1))
        updated = dataclasses.replace(change(customer), updated_at=updated_at)
        try:
            store.put_customer(updated, replaces=customer.updated_at)
            return updated
        except ConflictError:
            if attempt + 1 == UPDATE_ATTEMPTS:
                raise
            time.sleep(random.uniform(0, 0.005 * 2**attempt))  # let the other writer finish
    raise AssertionError("unreachable")


def _with_catalog_prices(store: Store, purchases: Sequence[Purchase]) -> list[Purchase]:
    """unit_price 0 means "the catalog price" (common.proto); products not in the catalog keep 0."""
    unpriced = {p.product_id for p in purchases if p.unit_price == 0}
    if not unpriced:
        return list(purchases)
    catalog = store.get_products(sorted(unpriced))
    return [
        dataclasses.replace(p, unit_price=catalog[p.product_id].price)
        if p.unit_price == 0 and p.product_id in catalog
        else p
        for p in purchases
    ]


def _import_purchases(store: Store, purchases: list[Purchase], first_row_of: dict[str, int]) -> int:
    for customer_id, row in first_row_of.items():
        try:
            store.get_customer(customer_id)
        except NotFoundError:
            raise InvalidArgumentError(f"rows[{row}].customer_id", f"customer {customer_id!r} is not registered") from None
    return store.add_purchases(_with_catalog_prices(store, purchases))


def _export(store: Store, customer_id: str) -> customer_pb2.ExportCustomerDataResponse:
    customer = store.get_customer(customer_id)
    purchases = store.purchases_of(customer_id)
    interactions = store.list_interactions(customer_id, limit=_EVERYTHING)
    served = store.list_recommendations(customer_id, limit=_EVERYTHING)
    feedback = [f for s in served for f in store.list_feedback(s.recommendation_id)]
    documents = store.customer_documents(customer_id)
    return customer_pb2.ExportCustomerDataResponse(
        format_version=EXPORT_FORMAT_VERSION,
        exported_at=mapping.timestamp_to_proto(_now()),
        profile=mapping.customer_to_proto(customer),
        purchases=[mapping.purchase_to_proto(p) for p in reversed(purchases)],  # newest first
        interactions=[mapping.interaction_to_proto(i) for i in interactions],
        recommendations=[mapping.recommendation_to_proto(s) for s in served],
        feedback=[mapping.feedback_to_proto(f) for f in feedback],
        documents=[mapping.document_to_proto(kind, at, body) for kind, at, body in documents],
    )
