"""CatalogService: batch upserts, look-ups and filtered listing of products.

An upsert refreshes this process's catalog snapshot before answering, so the caller's next
recommendations already filter with the new prices and stock; other processes notice the change
on their own (engine/filters.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc

from omnix_recs._proto.omnix.v1 import catalog_pb2, catalog_pb2_grpc, common_pb2
from omnix_recs.api import mapping
from omnix_recs.api import validation as check
from omnix_recs.api.validation import Validator
from omnix_recs.app import AppContext
from omnix_recs.domain.models import DIETARY_TAGS, ProductFilter
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.limits import MAX_FILTER_VALUES, MAX_LABEL_LENGTH

SERVICE_NAME = catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name


def register(server: grpc.aio.Server, app: AppContext) -> list[str]:
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(CatalogServicer(app), server)
    return [SERVICE_NAME]


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, app: AppContext) -> None:
        self.store = app.store
        self.catalog = app.catalog
        self.v = Validator(app.settings.limits)

    async def UpsertProducts(
        self,
        request: catalog_pb2.UpsertProductsRequest,
        context: grpc.aio.ServicerContext[catalog_pb2.UpsertProductsRequest, catalog_pb2.UpsertProductsResponse],
    ) -> catalog_pb2.UpsertProductsResponse:
        self.v.batch("products", request.products)
        now = datetime.now(UTC)
        products = []
        first_index_of: dict[str, int] = {}
        for i, msg in enumerate(request.products):
            product = mapping.product_from_proto(self.v, f"products[{i}]", msg, now=now)
            earlier = first_index_of.setdefault(product.product_id, i)
            if earlier != i:
                raise InvalidArgumentError(
                    f"products[{i}].product_id", f"{product.product_id!r} is also products[{earlier}]"
                )
            products.append(product)
        upserted = await asyncio.to_thread(self.store.upsert_products, products)
        if self.catalog is not None:  # this caller's next recommendations see the change
            await asyncio.to_thread(self.catalog.refresh)
        return catalog_pb2.UpsertProductsResponse(upserted=upserted)

    async def GetProduct(
        self,
        request: catalog_pb2.GetProductRequest,
        context: grpc.aio.ServicerContext[catalog_pb2.GetProductRequest, common_pb2.Product],
    ) -> common_pb2.Product:
        product_id = self.v.require_id("product_id", request.product_id)
        product = await asyncio.to_thread(self.store.get_product, product_id)
        return mapping.product_to_proto(product)

    async def ListProducts(
        self,
        request: catalog_pb2.ListProductsRequest,
        context: grpc.aio.ServicerContext[catalog_pb2.ListProductsRequest, catalog_pb2.ListProductsResponse],
    ) -> catalog_pb2.ListProductsResponse:
        product_filter = ProductFilter(
            departments=check.text_list(
                "departments", request.departments, max_items=MAX_FILTER_VALUES, max_length=MAX_LABEL_LENGTH
            ),
            aisles=check.text_list("aisles", request.aisles, max_items=MAX_FILTER_VALUES, max_length=MAX_LABEL_LENGTH),
            brands=check.text_list("brands", request.brands, max_items=MAX_FILTER_VALUES, max_length=MAX_LABEL_LENGTH),
            dietary_tags=check.vocabulary("dietary_tags", request.dietary_tags, DIETARY_TAGS),
            in_stock_only=request.in_stock_only,
        )
        page_size = self.v.page_size("page_size", request.page_size)
        page_token = self.v.page_token("page_token", request.page_token)
        page = await asyncio.to_thread(self.store.list_products, product_filter, page_size, page_token)
        return catalog_pb2.ListProductsResponse(
            products=[mapping.product_to_proto(p) for p in page.items], next_page_token=page.next_page_token
        )
