"""CustomerService: validate the request, call the `CustomerService` of customers.py, map back.

The writes and what they publish live in customers.py, so that anything else writing customer
data gets the same retries and cache invalidation; every call into it blocks, so it runs in a
worker thread. Reads that change nothing (a profile, a page of purchases) go to the store.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc

from omnix_recs._proto.omnix.v1 import customer_pb2, customer_pb2_grpc
from omnix_recs.api import mapping
from omnix_recs.api import validation as check
from omnix_recs.api.validation import Validator
from omnix_recs.app import AppContext
from omnix_recs.customers import DEMOGRAPHIC_FIELDS, CustomerExport, CustomerService
from omnix_recs.domain.models import ALLERGENS, DIETARY_TAGS, Consent, Customer, Page, Purchase
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.limits import MAX_BASKET_LINES, MAX_DIETARY_ENTRIES, MAX_IMPORT_ROWS
from omnix_recs.marketing.loyalty import LoyaltyStatus, loyalty_status

SERVICE_NAME = customer_pb2.DESCRIPTOR.services_by_name["CustomerService"].full_name
EXPORT_FORMAT_VERSION = 1


def register(server: grpc.aio.Server, app: AppContext) -> list[str]:
    customer_pb2_grpc.add_CustomerServiceServicer_to_server(CustomerServicer(app), server)
    return [SERVICE_NAME]


def _now() -> datetime:
    return datetime.now(UTC)


class CustomerServicer(customer_pb2_grpc.CustomerServiceServicer):
    def __init__(self, app: AppContext) -> None:
        self.store = app.store
        self.customers: CustomerService = app.customers
        self.v = Validator(app.settings.limits)

    async def RegisterCustomer(
        self,
        request: customer_pb2.RegisterCustomerRequest,
        context: grpc.aio.ServicerContext[customer_pb2.RegisterCustomerRequest, customer_pb2.CustomerProfile],
    ) -> customer_pb2.CustomerProfile:
        now = _now()
        customer_id = self.v.optional_id("customer_id", request.customer_id) or uuid.uuid4().hex
        customer = mapping.customer_from_register(self.v, request, customer_id=customer_id, now=now)
        registered = await asyncio.to_thread(self.customers.register, customer)
        return await self._profile(registered)

    async def GetCustomerProfile(
        self,
        request: customer_pb2.GetCustomerProfileRequest,
        context: grpc.aio.ServicerContext[customer_pb2.GetCustomerProfileRequest, customer_pb2.CustomerProfile],
    ) -> customer_pb2.CustomerProfile:
        customer_id = self.v.require_id("customer_id", request.customer_id)
        customer = await asyncio.to_thread(self.store.get_customer, customer_id)
        return await self._profile(customer)

    async def _profile(self, customer: Customer) -> customer_pb2.CustomerProfile:
        """The profile as every RPC returns it: with the loyalty standing of its purchases."""
        lines = await asyncio.to_thread(self.store.order_lines_of, customer.customer_id)
        profile = mapping.customer_to_proto(customer)
        profile.loyalty.CopyFrom(_loyalty_to_proto(loyalty_status(lines, _now().timestamp())))
        return profile

    async def UpdatePreferences(
        self,
        request: customer_pb2.UpdatePreferencesRequest,
        context: grpc.aio.ServicerContext[customer_pb2.UpdatePreferencesRequest, customer_pb2.CustomerProfile],
    ) -> customer_pb2.CustomerProfile:
        customer_id = self.v.require_id("customer_id", request.customer_id)
        paths = list(request.update_mask.paths)
        for i, path in enumerate(paths):
            if path not in mapping.PREFERENCE_FIELDS:
                raise InvalidArgumentError(
                    f"update_mask.paths[{i}]",
                    f"unknown field {path!r} (fields: {', '.join(mapping.PREFERENCE_FIELDS)})",
                )
        preferences = mapping.preferences_from_proto(self.v, "preferences", request.preferences)
        updated = await asyncio.to_thread(self.customers.update_preferences, customer_id, preferences, paths)
        return await self._profile(updated)

    async def SetDietaryRestrictions(
        self,
        request: customer_pb2.SetDietaryRestrictionsRequest,
        context: grpc.aio.ServicerContext[customer_pb2.SetDietaryRestrictionsRequest, customer_pb2.CustomerProfile],
    ) -> customer_pb2.CustomerProfile:
        customer_id = self.v.require_id("customer_id", request.customer_id)
        restrictions = check.vocabulary(
            "restrictions", request.restrictions, DIETARY_TAGS, max_items=MAX_DIETARY_ENTRIES
        )
        allergens = check.vocabulary("allergens", request.allergens, ALLERGENS, max_items=MAX_DIETARY_ENTRIES)
        updated = await asyncio.to_thread(self.customers.set_dietary_restrictions, customer_id, restrictions, allergens)
        return await self._profile(updated)

    async def UpdateConsent(
        self,
        request: customer_pb2.UpdateConsentRequest,
        context: grpc.aio.ServicerContext[customer_pb2.UpdateConsentRequest, customer_pb2.CustomerProfile],
    ) -> customer_pb2.CustomerProfile:
        customer_id = self.v.require_id("customer_id", request.customer_id)
        if not request.HasField("consent"):
            raise InvalidArgumentError("consent", "is required (all three flags, whole)")
        consent = Consent(
            personalization=request.consent.personalization,
            marketing=request.consent.marketing,
            analytics=request.consent.analytics,
        )
        updated = await asyncio.to_thread(self.customers.set_consent, customer_id, consent)
        return await self._profile(updated)

    async def UpdateDemographics(
        self,
        request: customer_pb2.UpdateDemographicsRequest,
        context: grpc.aio.ServicerContext[customer_pb2.UpdateDemographicsRequest, customer_pb2.CustomerProfile],
    ) -> customer_pb2.CustomerProfile:
        customer_id = self.v.require_id("customer_id", request.customer_id)
        paths = list(dict.fromkeys(request.update_mask.paths))
        if not paths:
            raise InvalidArgumentError("update_mask", f"name at least one field ({', '.join(DEMOGRAPHIC_FIELDS)})")
        for i, path in enumerate(paths):
            if path not in DEMOGRAPHIC_FIELDS:
                raise InvalidArgumentError(
                    f"update_mask.paths[{i}]", f"unknown field {path!r} (fields: {', '.join(DEMOGRAPHIC_FIELDS)})"
                )
        # The registration checks, field for field: a profile changed later obeys the same rules.
        given = mapping.customer_from_register(
            self.v,
            customer_pb2.RegisterCustomerRequest(
                display_name=request.display_name,
                email=request.email,
                age_band=request.age_band,
                household_size=request.household_size,
                postcode=request.postcode,
            ),
            customer_id=customer_id,
            now=_now(),
        )
        updated = await asyncio.to_thread(self.customers.update_demographics, customer_id, given, paths)
        return await self._profile(updated)

    async def ListPurchases(
        self,
        request: customer_pb2.ListPurchasesRequest,
        context: grpc.aio.ServicerContext[customer_pb2.ListPurchasesRequest, customer_pb2.ListPurchasesResponse],
    ) -> customer_pb2.ListPurchasesResponse:
        customer_id = self.v.require_id("customer_id", request.customer_id)
        page_size = self.v.page_size("page_size", request.page_size)
        page_token = self.v.page_token("page_token", request.page_token)
        start = check.timestamp("start_time", request, "start_time", required=False)
        end = check.timestamp("end_time", request, "end_time", required=False)
        check.time_range("start_time", start, "end_time", end)
        page = await asyncio.to_thread(self._purchases_of_known, customer_id, page_size, page_token, start, end)
        return customer_pb2.ListPurchasesResponse(
            purchases=[mapping.purchase_to_proto(p) for p in page.items], next_page_token=page.next_page_token
        )

    def _purchases_of_known(
        self, customer_id: str, page_size: int, page_token: str, start: datetime | None, end: datetime | None
    ) -> Page[Purchase]:
        """A page of the customer's purchases; NOT_FOUND for an unknown or erased customer, like
        every other read (an empty list would claim the customer exists)."""
        page = self.store.list_purchases(customer_id, page_size, page_token, start, end)
        if not page.items:  # a customer with purchases exists: look it up only when there are none
            self.store.get_customer(customer_id)
        return page

    async def RecordPurchase(
        self,
        request: customer_pb2.RecordPurchaseRequest,
        context: grpc.aio.ServicerContext[customer_pb2.RecordPurchaseRequest, customer_pb2.RecordPurchaseResponse],
    ) -> customer_pb2.RecordPurchaseResponse:
        customer_id = self.v.require_id("customer_id", request.customer_id)
        if not request.HasField("purchase"):
            raise InvalidArgumentError("purchase", "is required")
        purchase = mapping.purchase_from_proto(self.v, "purchase", customer_id, request.purchase, now=_now())
        (stored,) = await asyncio.to_thread(self.customers.record_purchases, customer_id, [purchase])
        return customer_pb2.RecordPurchaseResponse(purchase=mapping.purchase_to_proto(stored))

    async def RecordPurchases(
        self,
        request: customer_pb2.RecordPurchasesRequest,
        context: grpc.aio.ServicerContext[customer_pb2.RecordPurchasesRequest, customer_pb2.RecordPurchasesResponse],
    ) -> customer_pb2.RecordPurchasesResponse:
        customer_id = self.v.require_id("customer_id", request.customer_id)
        self.v.batch("purchases", request.purchases, maximum=MAX_BASKET_LINES)
        now = _now()
        purchases = [
            mapping.purchase_from_proto(self.v, f"purchases[{i}]", customer_id, line, now=now)
            for i, line in enumerate(request.purchases)
        ]
        stored = await asyncio.to_thread(self.customers.record_purchases, customer_id, purchases)
        return customer_pb2.RecordPurchasesResponse(purchases=[mapping.purchase_to_proto(p) for p in stored])

    async def RecordInteraction(
        self,
        request: customer_pb2.RecordInteractionRequest,
        context: grpc.aio.ServicerContext[customer_pb2.RecordInteractionRequest, customer_pb2.Interaction],
    ) -> customer_pb2.Interaction:
        customer_id = self.v.require_id("customer_id", request.customer_id)
        if not request.HasField("interaction"):
            raise InvalidArgumentError("interaction", "is required")
        interaction = mapping.interaction_from_proto(
            self.v, "interaction", customer_id, request.interaction, interaction_id=uuid.uuid4().hex, now=_now()
        )
        recorded = await asyncio.to_thread(self.customers.record_interaction, interaction)
        return mapping.interaction_to_proto(recorded)

    async def ImportPurchases(
        self,
        request_iterator: AsyncIterator[customer_pb2.ImportPurchasesRow],
        context: grpc.aio.ServicerContext[customer_pb2.ImportPurchasesRow, customer_pb2.ImportPurchasesResponse],
    ) -> customer_pb2.ImportPurchasesResponse:
        try:
            purchases = await self._read_import(request_iterator)
            summary = await asyncio.to_thread(self.customers.import_purchases, purchases)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(exc.field, f"{exc.message} (nothing was imported)") from None
        return customer_pb2.ImportPurchasesResponse(
            rows_received=summary.rows_received, customers=summary.customers, rows_written=summary.rows_written
        )

    async def _read_import(self, rows: AsyncIterator[customer_pb2.ImportPurchasesRow]) -> list[Purchase]:
        """Every row, validated; stops at the first bad one (row i is `purchases[i]`)."""
        now = _now()
        purchases: list[Purchase] = []
        async for row in rows:
            index = len(purchases)
            if index == MAX_IMPORT_ROWS:
                raise InvalidArgumentError("rows", f"at most {MAX_IMPORT_ROWS} rows per call; split the import")
            customer_id = self.v.require_id(f"rows[{index}].customer_id", row.customer_id)
            if not row.HasField("purchase"):
                raise InvalidArgumentError(f"rows[{index}].purchase", "is required")
            purchases.append(
                mapping.purchase_from_proto(self.v, f"rows[{index}].purchase", customer_id, row.purchase, now=now)
            )
        if not purchases:
            raise InvalidArgumentError("rows", "the stream is empty; send at least one row")
        return purchases

    async def ExportCustomerData(
        self,
        request: customer_pb2.ExportCustomerDataRequest,
        context: grpc.aio.ServicerContext[
            customer_pb2.ExportCustomerDataRequest, customer_pb2.ExportCustomerDataResponse
        ],
    ) -> customer_pb2.ExportCustomerDataResponse:
        customer_id = self.v.require_id("customer_id", request.customer_id)
        export = await asyncio.to_thread(self.customers.export, customer_id)
        return _export_to_proto(export)

    async def DeleteCustomer(
        self,
        request: customer_pb2.DeleteCustomerRequest,
        context: grpc.aio.ServicerContext[customer_pb2.DeleteCustomerRequest, customer_pb2.DeleteCustomerResponse],
    ) -> customer_pb2.DeleteCustomerResponse:
        customer_id = self.v.require_id("customer_id", request.customer_id)
        erasure = await asyncio.to_thread(self.customers.erase, customer_id)
        return customer_pb2.DeleteCustomerResponse(erased=erasure.counts)


def _loyalty_to_proto(status: LoyaltyStatus) -> customer_pb2.LoyaltyStatus:
    return customer_pb2.LoyaltyStatus(
        points=status.points,
        tier=status.tier,
        spend_last_year=status.spend_last_year,
        next_tier=status.next_tier,
        spend_to_next_tier=status.spend_to_next_tier,
        trips_last_90_days=status.trips_last_90_days,
        vip=status.vip,
    )


def _export_to_proto(export: CustomerExport) -> customer_pb2.ExportCustomerDataResponse:
    return customer_pb2.ExportCustomerDataResponse(
        format_version=EXPORT_FORMAT_VERSION,
        exported_at=mapping.timestamp_to_proto(export.exported_at),
        profile=mapping.customer_to_proto(export.customer),
        purchases=[mapping.purchase_to_proto(p) for p in export.purchases],
        interactions=[mapping.interaction_to_proto(i) for i in export.interactions],
        recommendations=[mapping.recommendation_to_proto(s) for s in export.recommendations],
        feedback=[mapping.feedback_to_proto(f) for f in export.feedback],
        documents=[mapping.document_to_proto(kind, at, body) for kind, at, body in export.documents],
    )
