"""Inventory forecasts and reorder advice: the maths against scipy, and the RPCs over real gRPC."""

from __future__ import annotations

from datetime import timedelta

import grpc
import numpy as np
import pytest
from google.protobuf import timestamp_pb2
from marketing_shop import NOW
from scipy.stats import poisson

from omnix_recs._proto.omnix.v1 import inventory_pb2 as pb
from omnix_recs._proto.omnix.v1 import inventory_pb2_grpc
from omnix_recs.domain.purchases import PurchaseColumns
from omnix_recs.marketing import inventory

MEANS = np.array([0.0, 0.01, 0.3, 0.7, 1.0, 2.5, 10.0, 57.3, 150.0, 199.0])


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9, 0.95, 0.99])
def test_poisson_quantiles_match_scipy(q):
    expected = np.where(MEANS > 0, poisson.ppf(q, np.maximum(MEANS, 1e-12)), 0.0)
    np.testing.assert_array_equal(inventory._quantile(q, MEANS), expected)


def test_large_means_are_close_to_scipy():
    means = np.array([250.0, 1_000.0, 20_000.0])
    np.testing.assert_allclose(inventory._quantile(0.9, means), poisson.ppf(0.9, means), atol=1)


@pytest.mark.parametrize(("mean", "stock"), [(2.5, 0), (2.5, 3), (10.0, 7), (10.0, 30), (0.4, 1)])
def test_expected_shortfall_matches_its_definition(mean, stock):
    k = np.arange(0, 200)
    expected = float(np.sum(np.maximum(k - stock, 0) * poisson.pmf(k, mean)))
    assert inventory._expected_short(mean, stock) == pytest.approx(expected, abs=1e-9)


def test_forecast_is_the_median_of_the_recent_rate():
    units = np.zeros((3, 91))
    units[0, :] = 2.0  # two a day, every day
    units[1, -7:] = 1.0  # started selling a week ago
    f = inventory.forecast(units, 7)
    assert f.mean_daily[0] == pytest.approx(2.0) and f.expected[0] == 14.0
    assert f.low[0] < 14.0 < f.high[0]
    assert 0 < f.mean_daily[1] < 1.0 and f.expected[2] == f.high[2] == 0.0


@pytest.mark.parametrize(
    ("on_hand", "on_order", "orders"),
    [(0, 0, True), (5, 0, True), (40, 0, False), (10, 30, False)],
)
def test_reorder_covers_lead_time_and_review_at_the_service_level(on_hand, on_order, orders):
    advice = inventory.reorder(2.0, on_hand, on_order, lead_time_days=3, review_days=7, service_level=0.95)
    assert advice.reorder_point == poisson.ppf(0.95, 20.0)
    assert (advice.order_quantity > 0) is orders
    if orders:
        assert on_hand + on_order + advice.order_quantity >= advice.reorder_point
        assert advice.stock_outs_avoided > 0 and advice.expected_units_short_with < 0.2
    assert advice.stockout_probability == pytest.approx(poisson.sf(on_hand + on_order, 20.0))


def test_backtest_beats_the_baselines_on_steady_noisy_demand():
    rng = np.random.default_rng(3)
    rates = rng.gamma(0.5, 2.0, size=400)
    units = rng.poisson(rates[:, None], size=(400, 200)).astype(float)
    rows = {(r.method, r.horizon_days): r for r in inventory.backtest(units, [150, 170])}
    for h in (7, 14):
        assert rows[("omnix", h)].wape < rows[("moving average (28 days)", h)].wape
        assert rows[("omnix", h)].wape < rows[("seasonal naive (last week)", h)].wape


def test_sales_window_cuts_each_store_s_demand():
    day = 86_400
    columns = PurchaseColumns(
        customer_ids=["a", "a", "b", "c"],
        order_ids=["o1", "o1", "o2", "o3"],
        product_ids=["milk", "tea", "milk", "milk"],
        quantities=[1, 2, 3, 4],
        unit_prices=[1.0] * 4,
        purchased_at=[10 * day, 10 * day, 11 * day, 11 * day + 5],
        store_ids=["north", "north", "south", ""],
    )
    window = inventory.SalesWindow.from_columns([columns], as_of_s=12 * day, days=3)

    def rows(store_id):
        demand = window.demand(store_id)
        return dict(zip(demand.product_ids, demand.units.tolist()))

    assert rows(None) == {"milk": [0, 1, 7], "tea": [0, 2, 0]}
    assert rows("north") == {"milk": [0, 1, 0], "tea": [0, 2, 0]}
    assert rows("south") == {"milk": [0, 0, 3]}
    assert rows("") == {"milk": [0, 0, 4]}  # the lines with no store
    assert rows("west") == {}
    # Leaving customers out keeps each remaining line's store.
    assert columns.without_customers({"a"}).store_ids == ["south", ""]


@pytest.fixture
def stub(server) -> inventory_pb2_grpc.InventoryServiceStub:
    return server.stub(inventory_pb2_grpc.InventoryServiceStub)


def test_forecast_over_grpc(stub):
    """Milk, bread and eggs sell on every trip of seven shoppers; coffee hardly."""
    response = stub.GetInventoryForecast(pb.GetInventoryForecastRequest(horizon_days=7, limit=3))
    assert response.horizon_days == 7 and [f.product_id for f in response.forecasts][:3] != []
    assert {f.product_id for f in response.forecasts} == {"milk", "bread", "eggs"}
    named = stub.GetInventoryForecast(pb.GetInventoryForecastRequest(product_ids=["milk", "caviar"]))
    milk, caviar = named.forecasts
    assert milk.name == "Whole Milk" and milk.expected_units > 0 and milk.low_units <= milk.high_units
    assert caviar.expected_units == 0 and caviar.mean_daily_units == 0


def test_forecast_as_of_the_past_sees_only_the_past(stub):
    as_of = timestamp_pb2.Timestamp()
    as_of.FromDatetime(NOW - timedelta(days=400))
    response = stub.GetInventoryForecast(pb.GetInventoryForecastRequest(product_ids=["milk"], as_of=as_of))
    assert response.forecasts[0].expected_units == 0


def test_reorder_over_grpc(stub):
    response = stub.GetReorderRecommendations(
        pb.GetReorderRecommendationsRequest(
            positions=[
                pb.StockPosition(product_id="milk", on_hand=0, lead_time_days=2),
                pb.StockPosition(product_id="caviar", on_hand=3, lead_time_days=2),
            ]
        )
    )
    milk, caviar = response.recommendations
    assert milk.order_quantity > 0 and milk.reorder_point >= milk.order_quantity and milk.stockout_probability > 0.5
    assert milk.expected_stockouts_avoided > 0
    assert caviar.order_quantity == 0 and caviar.stockout_probability == 0


def test_forecasts_per_store_add_up_to_the_whole_shop(stub):
    def rates(store_id: str) -> dict[str, float]:
        response = stub.GetInventoryForecast(
            pb.GetInventoryForecastRequest(product_ids=["milk", "coffee"], store_id=store_id)
        )
        assert response.store_id == store_id
        return {f.product_id: f.mean_daily_units for f in response.forecasts}

    north, south, everywhere = rates("north"), rates("south"), rates("")
    assert 0 < north["milk"] < everywhere["milk"] and 0 < south["milk"] < everywhere["milk"]
    assert north["milk"] + south["milk"] == pytest.approx(everywhere["milk"], abs=2e-4)
    # Coffee was bought only in a basket with no store (and in nobody's cart): in no store.
    assert north["coffee"] == south["coffee"] == 0 < everywhere["coffee"]
    assert rates("west") == {"milk": 0.0, "coffee": 0.0}  # a store with no sales


def test_reorder_per_store_uses_that_store_s_demand(stub):
    def advice(store_id: str) -> pb.ReorderRecommendation:
        request = pb.GetReorderRecommendationsRequest(
            positions=[pb.StockPosition(product_id="milk", on_hand=0, lead_time_days=7)], store_id=store_id
        )
        return stub.GetReorderRecommendations(request).recommendations[0]

    north, everywhere, nowhere = advice("north"), advice(""), advice("west")
    assert 0 < north.mean_daily_units < everywhere.mean_daily_units
    assert 0 < north.order_quantity < everywhere.order_quantity
    assert nowhere.order_quantity == nowhere.mean_daily_units == 0


@pytest.mark.parametrize(
    ("call", "request_message", "code", "field"),
    [
        ("GetInventoryForecast", pb.GetInventoryForecastRequest(horizon_days=57), "INVALID_ARGUMENT", "horizon_days"),
        ("GetInventoryForecast", pb.GetInventoryForecastRequest(product_ids=["nope"]), "NOT_FOUND", ""),
        (
            "GetInventoryForecast",
            pb.GetInventoryForecastRequest(store_id="north store!"),
            "INVALID_ARGUMENT",
            "store_id",
        ),
        (
            "GetReorderRecommendations",
            pb.GetReorderRecommendationsRequest(positions=[pb.StockPosition(product_id="milk")], store_id="x" * 500),
            "INVALID_ARGUMENT",
            "store_id",
        ),
        ("GetReorderRecommendations", pb.GetReorderRecommendationsRequest(), "INVALID_ARGUMENT", "positions"),
        (
            "GetReorderRecommendations",
            pb.GetReorderRecommendationsRequest(positions=[pb.StockPosition(product_id="milk", on_hand=-1)]),
            "INVALID_ARGUMENT",
            "positions[0].on_hand",
        ),
        (
            "GetReorderRecommendations",
            pb.GetReorderRecommendationsRequest(positions=[pb.StockPosition(product_id="milk")], service_level=0.3),
            "INVALID_ARGUMENT",
            "service_level",
        ),
        (
            "GetReorderRecommendations",
            pb.GetReorderRecommendationsRequest(
                positions=[pb.StockPosition(product_id="milk"), pb.StockPosition(product_id="milk")]
            ),
            "INVALID_ARGUMENT",
            "positions[1].product_id",
        ),
    ],
)
def test_bad_inventory_requests(stub, call, request_message, code, field):
    with pytest.raises(grpc.RpcError) as error:
        getattr(stub, call)(request_message)
    assert error.value.code() == getattr(grpc.StatusCode, code)
    if field:
        assert error.value.details().startswith(f"{field}:")
