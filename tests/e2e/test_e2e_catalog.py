"""CatalogService end to end."""

from __future__ import annotations

import dataclasses

import grpc
import pytest
from e2e_support import bad_field, rpc_error

from omnix_recs._proto.omnix.v1 import catalog_pb2 as pb
from omnix_recs._proto.omnix.v1 import catalog_pb2_grpc
from omnix_recs._proto.omnix.v1.common_pb2 import Product
from omnix_recs.config import Limits, Settings

SHELF = [
    Product(
        product_id="p1",
        name="Whole milk",
        department="dairy eggs",
        aisle="milk",
        brand="Arla",
        price=1.1,
        pack_size="1 L",
        allergens=["milk"],
        in_stock=True,
    ),
    Product(
        product_id="p2",
        name="Oat drink",
        department="dairy eggs",
        aisle="milk",
        brand="Oatly",
        price=1.9,
        pack_size="1 L",
        dietary_tags=["vegan", "lactose_free"],
        allergens=["gluten"],
        in_stock=True,
    ),
    Product(
        product_id="p3",
        name="Soy yoghurt",
        department="dairy eggs",
        aisle="yogurt",
        brand="Alpro",
        price=2.2,
        dietary_tags=["vegan", "lactose_free", "gluten_free"],
        allergens=["soy"],
        in_stock=False,
    ),
    Product(
        product_id="p4",
        name="Sourdough",
        department="bakery",
        aisle="bread",
        brand="",
        price=3.0,
        dietary_tags=["vegan"],
        allergens=["gluten"],
        in_stock=True,
    ),
    Product(
        product_id="p5",
        name="Rye bread",
        department="bakery",
        aisle="bread",
        brand="Arla",
        price=2.5,
        dietary_tags=["vegan"],
        in_stock=True,
    ),
]


@pytest.fixture
def stocked(catalog):
    assert catalog.UpsertProducts(pb.UpsertProductsRequest(products=SHELF)).upserted == len(SHELF)
    return catalog


def ids(catalog, **request) -> list[str]:
    """Every page of ListProducts, as product ids."""
    found, token = [], ""
    while True:
        page = catalog.ListProducts(pb.ListProductsRequest(page_token=token, **request))
        found += [p.product_id for p in page.products]
        token = page.next_page_token
        if not token:
            return found


def test_get_round_trip(stocked):
    fetched = stocked.GetProduct(pb.GetProductRequest(product_id="p2"))
    assert fetched.updated_at.seconds > 0
    fetched.ClearField("updated_at")
    assert fetched == SHELF[1]


def test_upsert_replaces(stocked):
    cheaper = Product()
    cheaper.CopyFrom(SHELF[0])
    cheaper.price = 0.99
    stocked.UpsertProducts(pb.UpsertProductsRequest(products=[cheaper]))
    assert stocked.GetProduct(pb.GetProductRequest(product_id="p1")).price == pytest.approx(0.99)


@pytest.mark.parametrize(
    ("request_fields", "expected"),
    [
        ({}, ["p1", "p2", "p3", "p4", "p5"]),
        ({"departments": ["bakery"]}, ["p4", "p5"]),
        ({"aisles": ["milk", "yogurt"]}, ["p1", "p2", "p3"]),
        ({"brands": ["Arla"]}, ["p1", "p5"]),
        ({"dietary_tags": ["vegan", "lactose_free"]}, ["p2", "p3"]),
        ({"dietary_tags": ["vegan"], "in_stock_only": True}, ["p2", "p4", "p5"]),
        ({"departments": ["dairy eggs"], "brands": ["Arla"]}, ["p1"]),
        ({"departments": ["frozen"]}, []),
    ],
)
def test_list_with_filters_across_pages(stocked, request_fields, expected):
    assert ids(stocked, page_size=2, **request_fields) == expected


def test_pages_are_ordered_by_id(stocked):
    first = stocked.ListProducts(pb.ListProductsRequest(page_size=3))
    assert [p.product_id for p in first.products] == ["p1", "p2", "p3"] and first.next_page_token
    second = stocked.ListProducts(pb.ListProductsRequest(page_size=3, page_token=first.next_page_token))
    assert [p.product_id for p in second.products] == ["p4", "p5"] and not second.next_page_token


def product(**changes) -> Product:
    base = dict(product_id="px", name="Thing", department="pantry", aisle="tins", price=1.0)
    return Product(**{**base, **changes})


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (product(product_id=""), "products[1].product_id"),
        (product(product_id="p x"), "products[1].product_id"),
        (product(name=""), "products[1].name"),
        (product(price=-1), "products[1].price"),
        (product(dietary_tags=["vegan", "paleo"]), "products[1].dietary_tags[1]"),
        (product(allergens=["pollen"]), "products[1].allergens[0]"),
        (product(product_id="p0"), "products[1].product_id"),  # repeats products[0]
    ],
)
def test_bad_product_rejects_the_whole_batch(catalog, bad, field):
    batch = [product(product_id="p0"), bad, product(product_id="p9")]
    assert bad_field(rpc_error(catalog.UpsertProducts, pb.UpsertProductsRequest(products=batch))) == field
    assert ids(catalog) == []


def test_batch_length_limits(running_server):
    server = running_server(settings=Settings(limits=dataclasses.replace(Limits(), max_batch_items=3)))
    catalog = server.stub(catalog_pb2_grpc.CatalogServiceStub)
    too_many = [product(product_id=f"p{i}") for i in range(4)]
    error = rpc_error(catalog.UpsertProducts, pb.UpsertProductsRequest(products=too_many))
    assert bad_field(error) == "products" and "at most 3" in error.details()
    assert bad_field(rpc_error(catalog.UpsertProducts, pb.UpsertProductsRequest())) == "products"
    assert catalog.UpsertProducts(pb.UpsertProductsRequest(products=too_many[:3])).upserted == 3


def test_get_unknown_and_bad_ids(catalog):
    assert rpc_error(catalog.GetProduct, pb.GetProductRequest(product_id="nope")).code() is grpc.StatusCode.NOT_FOUND
    assert bad_field(rpc_error(catalog.GetProduct, pb.GetProductRequest(product_id=""))) == "product_id"
    assert bad_field(rpc_error(catalog.GetProduct, pb.GetProductRequest(product_id="x" * 129))) == "product_id"


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"dietary_tags": ["keto"]}, "dietary_tags[0]"),
        ({"departments": [""]}, "departments[0]"),
        ({"page_size": 1001}, "page_size"),
        ({"page_token": "not-a-token"}, "page_token"),
    ],
)
def test_list_rejections(catalog, request_fields, field):
    assert bad_field(rpc_error(catalog.ListProducts, pb.ListProductsRequest(**request_fields))) == field
