"""How much one request may ask for or carry: every request and field limit, in one place.

A limit keeps one call from costing the server more than it can afford and turns a caller's
mistake into a clear INVALID_ARGUMENT with the field named, before anything is written. The
configurable ones are `Limits` (part of `config.Settings`); the rest are constants. This module
imports nothing from the package, so any layer may read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits a deployment may change (through `Settings.limits`)."""

    max_id_length: int = 128  # characters of any id (common.proto)
    max_page_size: int = 1000  # entries per page of a List* call
    default_page_size: int = 100  # entries per page when the caller asks for 0
    max_batch_items: int = 10_000  # entries in one batch request (upserts, batch analysis ids)
    max_recommendations: int = 200  # items in one recommendation list
    max_message_bytes: int = 16 * 1024 * 1024  # bytes of one gRPC message, either direction


# --- ids and tokens ----------------------------------------------------------------------------

# Characters of a page token: ours are short and opaque, so anything much longer is not one.
MAX_PAGE_TOKEN_LENGTH = 1024
# Characters of a caller's x-request-id we are willing to log (longer ones are replaced).
MAX_REQUEST_ID_LENGTH = 128

# --- times -------------------------------------------------------------------------------------

# How far ahead of the server clock an event time (or an as_of) may be: client clocks drift
# and time zones get mixed up; anything later is a mistake in the caller's data.
MAX_CLOCK_SKEW = timedelta(days=1)

# --- order lines and products ------------------------------------------------------------------

MAX_QUANTITY = 10_000  # units of one product on one order line or cart event
MAX_PRICE = 1_000_000.0  # currency units per unit of a product
MAX_NAME_LENGTH = 200  # characters of a product or display name
MAX_LABEL_LENGTH = 100  # characters of a department, aisle or brand
MAX_PACK_SIZE_LENGTH = 50  # characters of a pack size ("6 x 330 ml")
MAX_VOCABULARY_ITEMS = 100  # dietary tags or allergens on one product or filter

# --- customers -------------------------------------------------------------------------------

MAX_BUDGET = 100_000.0  # currency units per shopping trip
MAX_HOUSEHOLD_SIZE = 20  # people
MAX_PREFERENCE_ITEMS = 50  # favourite departments, or favourite brands
MAX_DISLIKED_PRODUCTS = 1_000  # product ids a customer asked never to be shown
MAX_EMAIL_LENGTH = 254  # characters (RFC 5321 path limit)
MAX_POSTCODE_LENGTH = 16  # characters
MAX_QUERY_LENGTH = 500  # characters of a search an interaction records
MAX_DIETARY_ENTRIES = 20  # a customer's restrictions, or their allergens
# Order lines one RecordPurchases call may carry: far more than any real basket.
MAX_BASKET_LINES = 1_000
# Rows one ImportPurchases call may carry: all are held in memory until the whole stream is
# validated (a few hundred bytes each), so this bounds a call's footprint.
MAX_IMPORT_ROWS = 100_000

# --- catalog ---------------------------------------------------------------------------------

MAX_FILTER_VALUES = 100  # departments, aisles or brands one ListProducts filter names

# --- recommendations -------------------------------------------------------------------------

MAX_BASKET = 100  # product ids of the basket a recommendation request brings
MAX_DEPARTMENTS = 50  # departments a recommendation filter includes or excludes
MAX_TRENDING_WINDOW_DAYS = 366  # days GetTrending may look back: a year, leap day included

# --- insights --------------------------------------------------------------------------------

MAX_PREDICTIONS = 200  # products in one consumption forecast
MAX_CONCURRENCY = 16  # customers one BatchAnalyze call analyses at once (a worker thread each)
MAX_BATCH_CUSTOMERS = 1_000_000  # customers one BatchAnalyze call may walk through
MAX_PROGRESS_EVERY = 100_000  # customers between two BatchAnalyze progress messages
