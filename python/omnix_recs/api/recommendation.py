"""RecommendationService: validate the request, ask the `Recommender`, map the answer.

Lists are answered on the event loop when everything they need is in this process's memory,
and in a worker thread only when they would wait (blocking.py); with Redis every read waits, so
they always go to a thread.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TypedDict

import grpc
from google.protobuf.message import Message

from omnix_recs._proto.omnix.v1 import recommendation_pb2 as pb
from omnix_recs._proto.omnix.v1 import recommendation_pb2_grpc
from omnix_recs.api import validation as check
from omnix_recs.api.response_cache import ResponseBodies, Stamp, add_service, with_recommendation_id
from omnix_recs.api.validation import Validator
from omnix_recs.app import AppContext
from omnix_recs.blocking import run_memory_first
from omnix_recs.domain.models import ALLERGENS, DIETARY_TAGS, Feedback, FeedbackEvent, RecommendedItem
from omnix_recs.engine.blends import Strategy
from omnix_recs.engine.recommender import Lifecycle, ModelSource, Recommender, RequestFilters
from omnix_recs.engine.served_lists import Recommendations, ServedLists
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.experiments.serving import ExperimentRouter, Route
from omnix_recs.limits import (
    MAX_BASKET,
    MAX_CLOCK_SKEW,
    MAX_DEPARTMENTS,
    MAX_LABEL_LENGTH,
    MAX_PRICE,
    MAX_TRENDING_WINDOW_DAYS,
)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RecommendationService"].full_name
DEFAULT_LIMIT = 10
NO_FILTERS = RequestFilters()

_STRATEGIES = {
    pb.STRATEGY_UNSPECIFIED: Strategy.BALANCED,
    pb.STRATEGY_BALANCED: Strategy.BALANCED,
    pb.STRATEGY_REPLENISH: Strategy.REPLENISH,
    pb.STRATEGY_DISCOVER: Strategy.DISCOVER,
}
_STRATEGY_TO_PROTO = {strategy: number for number, strategy in _STRATEGIES.items() if number}
_LIFECYCLE_TO_PROTO = {
    Lifecycle.NEW: pb.LIFECYCLE_STAGE_NEW,
    Lifecycle.REGULAR: pb.LIFECYCLE_STAGE_REGULAR,
    Lifecycle.VIP: pb.LIFECYCLE_STAGE_VIP,
}
_EVENTS = {
    pb.FEEDBACK_EVENT_SHOWN: FeedbackEvent.SHOWN,
    pb.FEEDBACK_EVENT_CLICKED: FeedbackEvent.CLICKED,
    pb.FEEDBACK_EVENT_ADDED_TO_CART: FeedbackEvent.ADDED_TO_CART,
    pb.FEEDBACK_EVENT_PURCHASED: FeedbackEvent.PURCHASED,
    pb.FEEDBACK_EVENT_DISMISSED: FeedbackEvent.DISMISSED,
}


def register(server: grpc.aio.Server, app: AppContext) -> list[str]:
    discount = app.settings.popularity_discount
    recommender = Recommender(
        app.store,
        app.models,
        cache=app.cache,
        catalog=app.catalog,
        served_lists=app.served_lists,
        popularity_discount=discount,
    )

    def arm_recommender(models: ModelSource, served_lists: ServedLists) -> Recommender:
        return Recommender(
            app.store,
            models,
            cache=app.cache,
            catalog=app.catalog,
            served_lists=served_lists,
            popularity_discount=discount,
        )

    router = ExperimentRouter(
        app.store,
        app.models,
        app.served_lists or app.store,
        arm_recommender,
        settings=app.settings,
        check_every_s=app.settings.follow_interval_s,
    )
    app.experiment_listeners.append(router.refresh)
    servicer = RecommendationServicer(app, recommender, router)
    # GetRecommendations answers with wire bytes (api/response_cache.py).
    add_service(server, pb.DESCRIPTOR.services_by_name["RecommendationService"], servicer, ["GetRecommendations"])
    return [SERVICE_NAME]


class RecommendationServicer(recommendation_pb2_grpc.RecommendationServiceServicer):
    def __init__(self, app: AppContext, recommender: Recommender, router: ExperimentRouter | None = None) -> None:
        self.v = Validator(app.settings.limits)
        self.recommender = recommender
        self.router = router
        # Lists come from memory when the shopper is in this process's cache: answer those on
        # the event loop (blocking.py). With Redis every read is a network round trip.
        self._answer = run_memory_first if app.cache.in_memory else asyncio.to_thread
        self.bodies = ResponseBodies(_recommendations_body)

    async def GetRecommendations(
        self,
        request: pb.GetRecommendationsRequest,
        context: grpc.aio.ServicerContext[pb.GetRecommendationsRequest, pb.GetRecommendationsResponse],
    ) -> bytes:
        """The response's wire bytes (a `GetRecommendationsResponse`): see api/response_cache.py."""
        customer_id = self.v.require_id("customer_id", request.customer_id)
        limit = self._limit(request.limit)
        if request.strategy not in _STRATEGIES:
            raise InvalidArgumentError(
                "strategy", f"unknown value {request.strategy} (one of {', '.join(pb.Strategy.keys())})"
            )
        strategy = _STRATEGIES[request.strategy]
        as_of = self._as_of(request, "as_of")
        filters = self._filters(request.filters)
        basket = self.v.id_list("basket_product_ids", request.basket_product_ids, MAX_BASKET)
        route = await self._route("recommendations", customer_id, as_of)
        if route is not None and route.holdout:  # a shop-wide list ranked for this call alone
            answer = await self._holdout_list(route, customer_id, limit, filters)
            body = _recommendations_body(answer, (route.assignments, _STRATEGY_TO_PROTO[strategy]))
            return with_recommendation_id(body, answer.recommendation_id)
        if route is not None and route.strategy is not None:
            strategy = route.strategy
        answer = await self._answer(
            (route.recommender if route else self.recommender).recommend,
            customer_id,
            strategy=strategy,
            limit=limit,
            as_of=as_of,
            basket=basket,
            filters=filters,
            exclude_purchased=request.exclude_purchased,
        )
        return self.bodies.response(answer, (route.assignments if route else (), _STRATEGY_TO_PROTO[strategy]))

    async def GetPersonalizedRecommendations(
        self,
        request: pb.GetPersonalizedRecommendationsRequest,
        context: grpc.aio.ServicerContext[
            pb.GetPersonalizedRecommendationsRequest, pb.GetPersonalizedRecommendationsResponse
        ],
    ) -> pb.GetPersonalizedRecommendationsResponse:
        customer_id = self.v.require_id("customer_id", request.customer_id)
        limit = self._limit(request.limit)
        as_of = self._as_of(request, "as_of")
        filters = self._filters(request.filters)
        route = await self._route("personalized", customer_id, as_of)
        if route is not None and route.holdout:
            answer = await self._holdout_list(route, customer_id, limit, filters)
            return pb.GetPersonalizedRecommendationsResponse(
                **_list_fields(answer, route), lifecycle=pb.LIFECYCLE_STAGE_UNSPECIFIED
            )
        answer = await self._answer(
            (route.recommender if route else self.recommender).personalized,
            customer_id,
            limit=limit,
            as_of=as_of,
            filters=filters,
        )
        return pb.GetPersonalizedRecommendationsResponse(
            **_list_fields(answer, route), lifecycle=_LIFECYCLE_TO_PROTO[Lifecycle(answer.lifecycle)]
        )

    async def GetSimilarProducts(
        self,
        request: pb.GetSimilarProductsRequest,
        context: grpc.aio.ServicerContext[pb.GetSimilarProductsRequest, pb.GetSimilarProductsResponse],
    ) -> pb.GetSimilarProductsResponse:
        product_id = self.v.require_id("product_id", request.product_id)
        limit = self._limit(request.limit)
        customer_id = self.v.optional_id("customer_id", request.customer_id)
        filters = self._filters(request.filters)
        route = await self._route("similar", customer_id, None)
        answer = await self._answer(
            self._recommender(route).similar_products,
            product_id,
            limit=limit,
            customer_id=customer_id,
            filters=filters,
        )
        return pb.GetSimilarProductsResponse(**_list_fields(answer, route))

    async def GetFrequentlyBoughtTogether(
        self,
        request: pb.GetFrequentlyBoughtTogetherRequest,
        context: grpc.aio.ServicerContext[
            pb.GetFrequentlyBoughtTogetherRequest, pb.GetFrequentlyBoughtTogetherResponse
        ],
    ) -> pb.GetFrequentlyBoughtTogetherResponse:
        self.v.batch("basket_product_ids", request.basket_product_ids, maximum=MAX_BASKET)
        basket = self.v.id_list("basket_product_ids", request.basket_product_ids, MAX_BASKET)
        limit = self._limit(request.limit)
        customer_id = self.v.optional_id("customer_id", request.customer_id)
        filters = self._filters(request.filters)
        route = await self._route("frequently_bought_together", customer_id, None)
        answer = await self._answer(
            self._recommender(route).frequently_bought_together,
            basket,
            limit=limit,
            customer_id=customer_id,
            filters=filters,
        )
        return pb.GetFrequentlyBoughtTogetherResponse(**_list_fields(answer, route))

    async def GetTrending(
        self,
        request: pb.GetTrendingRequest,
        context: grpc.aio.ServicerContext[pb.GetTrendingRequest, pb.GetTrendingResponse],
    ) -> pb.GetTrendingResponse:
        limit = self._limit(request.limit)
        department = check.text("department", request.department, max_length=MAX_LABEL_LENGTH)
        window_days = check.integer("window_days", request.window_days, minimum=0, maximum=MAX_TRENDING_WINDOW_DAYS)
        customer_id = self.v.optional_id("customer_id", request.customer_id)
        filters = self._filters(request.filters)
        route = await self._route("trending", customer_id, None)
        answer, window = await self._answer(
            self._recommender(route).trending,
            limit=limit,
            department=department,
            window_days=window_days,
            customer_id=customer_id,
            filters=filters,
        )
        return pb.GetTrendingResponse(**_list_fields(answer, route), window_days=window)

    async def GetSeasonal(
        self,
        request: pb.GetSeasonalRequest,
        context: grpc.aio.ServicerContext[pb.GetSeasonalRequest, pb.GetSeasonalResponse],
    ) -> pb.GetSeasonalResponse:
        limit = self._limit(request.limit)
        requested = self._as_of(request, "as_of")
        as_of = requested or datetime.now(UTC)
        department = check.text("department", request.department, max_length=MAX_LABEL_LENGTH)
        customer_id = self.v.optional_id("customer_id", request.customer_id)
        filters = self._filters(request.filters)
        route = await self._route("seasonal", customer_id, requested)
        answer = await self._answer(
            self._recommender(route).seasonal,
            limit=limit,
            as_of=as_of,
            department=department,
            customer_id=customer_id,
            filters=filters,
        )
        return pb.GetSeasonalResponse(**_list_fields(answer, route), week_of_year=as_of.isocalendar().week)

    async def RecordFeedback(
        self,
        request: pb.RecordFeedbackRequest,
        context: grpc.aio.ServicerContext[pb.RecordFeedbackRequest, pb.RecordFeedbackResponse],
    ) -> pb.RecordFeedbackResponse:
        recommendation_id = self.v.require_id("recommendation_id", request.recommendation_id)
        customer_id = self.v.optional_id("customer_id", request.customer_id)
        product_id = self.v.require_id("product_id", request.product_id)
        event = _EVENTS[check.enum_value("event", request.event, pb.FeedbackEvent)]
        occurred_at = self._as_of(request, "occurred_at") or datetime.now(UTC)
        feedback = Feedback(recommendation_id, customer_id, product_id, event, occurred_at)
        await asyncio.to_thread(self.recommender.record_feedback, feedback)
        return pb.RecordFeedbackResponse()

    # --- experiments ----------------------------------------------------------------------

    def _recommender(self, route: Route | None) -> Recommender:
        return route.recommender if route is not None else self.recommender

    async def _route(self, surface: str, customer_id: str, as_of: datetime | None) -> Route | None:
        """The customer's arms of the experiments running on `surface`; backtests (`as_of`) and
        anonymous requests are never part of an experiment."""
        if self.router is None or as_of is not None:
            return None
        if self.router.refresh_due():
            await asyncio.to_thread(self.router.refresh)
        return self.router.route(surface, customer_id)

    async def _holdout_list(
        self, route: Route, customer_id: str, limit: int, filters: RequestFilters
    ) -> Recommendations:
        """What a holdout customer sees: the shop-wide trending list within their diet, nothing
        personalised, so the experiment measures what personalisation adds."""
        answer, _ = await self._answer(
            route.recommender.trending, limit=limit, customer_id=customer_id, filters=filters
        )
        return answer

    # --- shared checks ----------------------------------------------------------------------

    def _limit(self, value: int) -> int:
        if value == 0:
            return DEFAULT_LIMIT
        return check.integer("limit", value, minimum=1, maximum=self.v.limits.max_recommendations)

    @staticmethod
    def _as_of(request: Message, name: str) -> datetime | None:
        if not request.HasField(name):
            return None  # the usual case: now
        return check.timestamp(name, request, name, required=False, not_after=datetime.now(UTC) + MAX_CLOCK_SKEW)

    @staticmethod
    def _filters(msg: pb.RecommendationFilters) -> RequestFilters:
        if not msg.ByteSize():
            return NO_FILTERS  # the usual case: the profile's restrictions only
        max_price = check.number("filters.max_price", msg.max_price, minimum=0.0, maximum=MAX_PRICE)
        return RequestFilters(
            max_price=max_price or None,
            include_departments=check.text_list(
                "filters.include_departments",
                msg.include_departments,
                max_items=MAX_DEPARTMENTS,
                max_length=MAX_LABEL_LENGTH,
            ),
            exclude_departments=check.text_list(
                "filters.exclude_departments",
                msg.exclude_departments,
                max_items=MAX_DEPARTMENTS,
                max_length=MAX_LABEL_LENGTH,
            ),
            dietary=check.vocabulary("filters.dietary_restrictions", msg.dietary_restrictions, DIETARY_TAGS),
            allergens=check.vocabulary("filters.allergens", msg.allergens, ALLERGENS),
        )


def _recommendations_body(answer: Recommendations, stamp: Stamp) -> bytes:
    """A `GetRecommendationsResponse` serving `answer` under `stamp`, serialised without its id."""
    assignments, strategy = stamp
    experiment_id, arm_id = assignments[0] if assignments else ("", "")
    return pb.GetRecommendationsResponse(
        items=[_item_to_proto(item) for item in answer.items],
        model_version=answer.model_version,
        strategy=strategy,  # type: ignore[arg-type]
        experiment_id=experiment_id,
        arm_id=arm_id,
        assignments=[pb.ExperimentAssignment(experiment_id=e, arm_id=a) for e, a in assignments],
    ).SerializeToString()


def _item_to_proto(item: RecommendedItem) -> pb.Recommendation:
    return pb.Recommendation(
        product_id=item.product_id, score=item.score, confidence=item.confidence, reasons=list(item.reasons)
    )


class _ListFields(TypedDict):
    """The fields every list response shares."""

    items: list[pb.Recommendation]
    model_version: str
    recommendation_id: str
    experiment_id: str
    arm_id: str
    assignments: list[pb.ExperimentAssignment]


def _list_fields(answer: Recommendations, route: Route | None = None) -> _ListFields:
    return {
        "items": [_item_to_proto(item) for item in answer.items],
        "model_version": answer.model_version,
        "recommendation_id": answer.recommendation_id,
        "experiment_id": route.experiment_id if route else "",
        "arm_id": route.arm_id if route else "",
        "assignments": [
            pb.ExperimentAssignment(experiment_id=experiment, arm_id=arm)
            for experiment, arm in (route.assignments if route else ())
        ],
    }
