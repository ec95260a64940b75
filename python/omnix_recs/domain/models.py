"""The entities of a supermarket as the product sees them.

Plain frozen dataclasses shared by every layer: stores persist them, domain code reasons about
them, the API maps them to and from protobuf. All timestamps are timezone-aware UTC datetimes;
money is in the store's currency as a float with cents precision (prices are display values,
never summed into ledgers here).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


class InteractionKind(enum.StrEnum):
    VIEW = "view"
    CART_ADD = "cart_add"
    CART_REMOVE = "cart_remove"
    SEARCH = "search"
    WISHLIST = "wishlist"


CART_KINDS = frozenset({InteractionKind.CART_ADD, InteractionKind.CART_REMOVE})


class CustomerChange(enum.Enum):
    """What changed about a customer, for what was derived from their data (caches)."""

    DATA = "data"  # profile, purchases, or erasure: everything derived is stale
    CART = "cart"  # a cart event: only what depends on the cart is stale
    BROWSING = "browsing"  # a view, search or wishlist event: nothing served depends on it yet


class FeedbackEvent(enum.StrEnum):
    SHOWN = "shown"
    CLICKED = "clicked"
    ADDED_TO_CART = "added_to_cart"
    PURCHASED = "purchased"
    DISMISSED = "dismissed"


# The dietary vocabulary. A product tag says the product IS this; a customer restriction says
# the customer only eats products that are this (e.g. restriction "vegan" keeps vegan products).
DIETARY_TAGS: tuple[str, ...] = (
    "vegan",
    "vegetarian",
    "gluten_free",
    "lactose_free",
    "nut_free",
    "halal",
    "kosher",
    "organic",
    "sugar_free",
    "low_sodium",
)

# Allergens a product may contain; a customer's allergens exclude every product containing one.
ALLERGENS: tuple[str, ...] = (
    "gluten",
    "milk",
    "eggs",
    "peanuts",
    "tree_nuts",
    "soy",
    "fish",
    "shellfish",
    "sesame",
    "mustard",
    "celery",
)


@dataclass(frozen=True, slots=True)
class Preferences:
    favorite_departments: tuple[str, ...] = ()
    favorite_brands: tuple[str, ...] = ()
    disliked_products: tuple[str, ...] = ()
    budget_per_trip: float | None = None  # the shopper's own figure, None = not given
    organic_preference: bool = False


@dataclass(frozen=True, slots=True)
class Consent:
    personalization: bool = True  # may we use history to personalise?
    marketing: bool = False  # may we contact them with campaigns?
    analytics: bool = True  # may we include them in AI analysis?


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    created_at: datetime
    updated_at: datetime
    display_name: str = ""
    email: str = ""
    age_band: str = ""  # e.g. "25-34"; empty = unknown
    household_size: int = 0  # 0 = unknown
    postcode: str = ""
    preferences: Preferences = field(default_factory=Preferences)
    dietary_restrictions: tuple[str, ...] = ()
    allergens: tuple[str, ...] = ()
    consent: Consent = field(default_factory=Consent)


@dataclass(frozen=True, slots=True)
class Product:
    product_id: str
    name: str
    department: str
    aisle: str
    brand: str = ""
    price: float = 0.0
    pack_size: str = ""  # free text as printed on the shelf: "1 L", "6 x 330 ml"
    dietary_tags: tuple[str, ...] = ()
    allergens: tuple[str, ...] = ()
    in_stock: bool = True
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Purchase:
    """One order line: a product bought in an order."""

    customer_id: str
    order_id: str
    product_id: str
    quantity: int
    unit_price: float
    purchased_at: datetime
    store_id: str = ""  # the shop it was bought in; empty = not known (one shop, or online)


@dataclass(frozen=True, slots=True)
class Interaction:
    customer_id: str
    interaction_id: str
    kind: InteractionKind
    occurred_at: datetime
    product_id: str = ""  # empty for searches
    query: str = ""  # the search text, for SEARCH
    quantity: int = 0  # for cart add/remove


@dataclass(frozen=True, slots=True)
class RecommendedItem:
    product_id: str
    score: float
    confidence: float
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ServedRecommendation:
    """A list as it was served, kept so that feedback and evaluation can refer to it."""

    recommendation_id: str
    customer_id: str
    generated_at: datetime
    strategy: str
    model_version: str
    items: tuple[RecommendedItem, ...]
    # The A/B experiment and arm that chose how the list was made; empty outside experiments.
    experiment_id: str = ""
    arm_id: str = ""
    # The other experiments (declared independent) that shaped it too, as (experiment, arm).
    other_assignments: tuple[tuple[str, str], ...] = ()

    @property
    def assignments(self) -> tuple[tuple[str, str], ...]:
        """Every (experiment, arm) of the list, the primary one first; empty outside experiments."""
        primary = ((self.experiment_id, self.arm_id),) if self.experiment_id else ()
        return primary + self.other_assignments

    def arm_in(self, experiment_id: str) -> str:
        """The list's arm of `experiment_id`; empty when that experiment did not shape it."""
        return next((arm for experiment, arm in self.assignments if experiment == experiment_id), "")


@dataclass(frozen=True, slots=True)
class Feedback:
    recommendation_id: str
    customer_id: str
    product_id: str
    event: FeedbackEvent
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next_page_token: str = ""  # empty = no more pages


@dataclass(frozen=True, slots=True)
class ProductFilter:
    departments: tuple[str, ...] = ()
    aisles: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    dietary_tags: tuple[str, ...] = ()  # a product must carry every tag listed
    in_stock_only: bool = False
