"""InventoryService: validate, ask the `InventoryPlanner` (marketing/inventory.py), map back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc

from omnix_recs._proto.omnix.v1 import inventory_pb2 as pb
from omnix_recs._proto.omnix.v1 import inventory_pb2_grpc
from omnix_recs.api import validation as check
from omnix_recs.api.mapping import timestamp_to_proto
from omnix_recs.api.validation import Validator
from omnix_recs.app import AppContext
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.marketing.inventory import InventoryPlanner, StockPosition

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["InventoryService"].full_name
MAX_PRODUCTS = 1_000
DEFAULT_HORIZON_DAYS = 14
MAX_HORIZON_DAYS = 56
DEFAULT_LIMIT = 50
DEFAULT_SERVICE_LEVEL = 0.95
DEFAULT_REVIEW_DAYS = 7
MAX_STOCK = 1e9


def register(server: grpc.aio.Server, app: AppContext) -> list[str]:
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(
        InventoryServicer(InventoryPlanner(app.store), Validator(app.settings.limits)), server
    )
    return [SERVICE_NAME]


def _as_of(request: pb.GetInventoryForecastRequest | pb.GetReorderRecommendationsRequest) -> datetime:
    now = datetime.now(UTC)
    return check.timestamp("as_of", request, "as_of", required=False, not_after=now) or now


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, planner: InventoryPlanner, validator: Validator) -> None:
        self.planner = planner
        self.v = validator

    async def GetInventoryForecast(
        self,
        request: pb.GetInventoryForecastRequest,
        context: grpc.aio.ServicerContext[pb.GetInventoryForecastRequest, pb.GetInventoryForecastResponse],
    ) -> pb.GetInventoryForecastResponse:
        product_ids = self.v.id_list("product_ids", request.product_ids, MAX_PRODUCTS)
        horizon = (
            check.integer("horizon_days", request.horizon_days, minimum=0, maximum=MAX_HORIZON_DAYS)
            or DEFAULT_HORIZON_DAYS
        )
        limit = check.integer("limit", request.limit, minimum=0, maximum=MAX_PRODUCTS) or DEFAULT_LIMIT
        as_of = _as_of(request)
        store_id = self.v.optional_id("store_id", request.store_id)
        forecasts = await asyncio.to_thread(self.planner.forecast, product_ids, horizon, as_of, limit, store_id or None)
        return pb.GetInventoryForecastResponse(
            horizon_days=horizon,
            as_of=timestamp_to_proto(as_of),
            store_id=store_id,
            forecasts=[
                pb.ProductDemandForecast(
                    product_id=f.product_id,
                    name=f.name,
                    expected_units=f.expected_units,
                    low_units=f.low_units,
                    high_units=f.high_units,
                    mean_daily_units=f.mean_daily_units,
                )
                for f in forecasts
            ],
        )

    async def GetReorderRecommendations(
        self,
        request: pb.GetReorderRecommendationsRequest,
        context: grpc.aio.ServicerContext[pb.GetReorderRecommendationsRequest, pb.GetReorderRecommendationsResponse],
    ) -> pb.GetReorderRecommendationsResponse:
        check.count("positions", request.positions, minimum=1, maximum=MAX_PRODUCTS)
        positions = []
        seen: set[str] = set()
        for i, p in enumerate(request.positions):
            product_id = self.v.require_id(f"positions[{i}].product_id", p.product_id)
            if product_id in seen:
                raise InvalidArgumentError(f"positions[{i}].product_id", f"{product_id!r} is listed twice")
            seen.add(product_id)
            positions.append(
                StockPosition(
                    product_id,
                    check.number(f"positions[{i}].on_hand", p.on_hand, minimum=0, maximum=MAX_STOCK),
                    check.number(f"positions[{i}].on_order", p.on_order, minimum=0, maximum=MAX_STOCK),
                    check.integer(f"positions[{i}].lead_time_days", p.lead_time_days, minimum=0, maximum=120),
                )
            )
        service_level = request.service_level or DEFAULT_SERVICE_LEVEL
        check.number("service_level", service_level, minimum=0.5, maximum=0.999)
        review = (
            check.integer("review_period_days", request.review_period_days, minimum=0, maximum=60)
            or DEFAULT_REVIEW_DAYS
        )
        store_id = self.v.optional_id("store_id", request.store_id)
        advice = await asyncio.to_thread(
            self.planner.reorder, positions, service_level, review, _as_of(request), store_id or None
        )
        return pb.GetReorderRecommendationsResponse(
            recommendations=[
                pb.ReorderRecommendation(
                    product_id=product_id,
                    reorder_point=a.reorder_point,
                    order_quantity=a.order_quantity,
                    mean_daily_units=round(a.mean_daily_units, 4),
                    stockout_probability=round(a.stockout_probability, 4),
                    expected_stockouts_avoided=round(a.stock_outs_avoided, 4),
                )
                for product_id, a in advice
            ]
        )
