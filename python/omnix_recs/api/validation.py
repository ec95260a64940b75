"""Request checks shared by every servicer.

Each returns the value in the form the domain wants, or raises `InvalidArgumentError` naming
the field as the caller wrote it (`rows[3].customer_id`), so a bad request says what to fix and
changes nothing. Checks whose limits a deployment may change are methods of `Validator`, built
from `settings.limits`; the limits themselves live in `omnix_recs.limits`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Sequence, Sized
from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from omnix_recs.errors import InvalidArgumentError
from omnix_recs.limits import MAX_PAGE_TOKEN_LENGTH, MAX_VOCABULARY_ITEMS, Limits

ID_CHARACTERS = "letters, digits and . _ : @ -"
_ID_RE = re.compile(r"[A-Za-z0-9._:@-]+")
# Timestamps we accept: the Unix epoch up to the end of year 9999 (what datetime can hold).
_MIN_SECONDS = 0
_MAX_SECONDS = 253_402_300_799
# Control characters (C0, DEL, C1): NUL and terminal escapes have no place in a name or label.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Characters of a caller's value quoted back in an error (messages travel in trailers).
MAX_QUOTED = 100

EnumValue = TypeVar("EnumValue", bound=int)  # a generated enum type, e.g. `FeedbackEvent`


class Validator:
    """The checks whose limits come from configuration."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def require_id(self, field: str, value: str) -> str:
        """A non-empty id (common.proto: 1..max_id_length characters of `ID_CHARACTERS`)."""
        if not value:
            raise InvalidArgumentError(field, "is required")
        return self.optional_id(field, value)

    def optional_id(self, field: str, value: str) -> str:
        """An id, or "" when the caller left it empty."""
        if len(value) > self.limits.max_id_length:
            raise InvalidArgumentError(
                field, f"must be at most {self.limits.max_id_length} characters, got {len(value)}"
            )
        if value and not _ID_RE.fullmatch(value):
            raise InvalidArgumentError(field, f"may only contain {ID_CHARACTERS}, got {quote(value)}")
        return value

    def id_list(self, field: str, values: Sequence[str], max_items: int) -> tuple[str, ...]:
        """Distinct ids, in first-seen order."""
        if not values:  # the usual case on the hot path (no basket): nothing to check
            return ()
        count(field, values, maximum=max_items)
        return _distinct(self.require_id(f"{field}[{i}]", v) for i, v in enumerate(values))

    def page_size(self, field: str, value: int) -> int:
        """0 means the default page size; negative or above the maximum is an error."""
        if value < 0 or value > self.limits.max_page_size:
            raise InvalidArgumentError(field, f"must be between 0 and {self.limits.max_page_size}, got {value}")
        return value or self.limits.default_page_size

    def page_token(self, field: str, value: str) -> str:
        if len(value) > MAX_PAGE_TOKEN_LENGTH:
            raise InvalidArgumentError(field, "is not a page token returned by this service")
        return value

    def batch(self, field: str, items: Sized, *, maximum: int | None = None) -> None:
        """A list of 1..maximum entries (default: the configured batch limit)."""
        count(field, items, minimum=1, maximum=maximum or self.limits.max_batch_items)


def count(field: str, items: Sized, *, minimum: int = 0, maximum: int) -> None:
    n = len(items)
    if n < minimum:
        raise InvalidArgumentError(field, "is required" if minimum == 1 else f"needs at least {minimum} entries")
    if n > maximum:
        raise InvalidArgumentError(field, f"must have at most {maximum} entries, got {n}")


def text(field: str, value: str, *, max_length: int, required: bool = False) -> str:
    """Free text, stripped of surrounding whitespace."""
    value = value.strip()
    if required and not value:
        raise InvalidArgumentError(field, "is required")
    if len(value) > max_length:
        raise InvalidArgumentError(field, f"must be at most {max_length} characters, got {len(value)}")
    control = _CONTROL_RE.search(value)
    if control is not None:
        raise InvalidArgumentError(
            field, f"must not contain control characters (U+{ord(control.group()):04X} at position {control.start()})"
        )
    return value


def quote(value: str) -> str:
    """`repr(value)` cut to MAX_QUOTED characters, for error messages."""
    if len(value) <= MAX_QUOTED:
        return repr(value)
    return f"{value[:MAX_QUOTED]!r}... ({len(value)} characters)"


def text_list(field: str, values: Sequence[str], *, max_items: int, max_length: int) -> tuple[str, ...]:
    """Distinct non-empty texts, in first-seen order."""
    count(field, values, maximum=max_items)
    return _distinct(text(f"{field}[{i}]", v, max_length=max_length, required=True) for i, v in enumerate(values))


def vocabulary(
    field: str, values: Sequence[str], known: Collection[str], *, max_items: int = MAX_VOCABULARY_ITEMS
) -> tuple[str, ...]:
    """Distinct words from a closed vocabulary (dietary tags, allergens)."""
    count(field, values, maximum=max_items)
    for i, value in enumerate(values):
        if value not in known:
            raise InvalidArgumentError(
                f"{field}[{i}]", f"unknown value {quote(value)} (known: {', '.join(sorted(known))})"
            )
    return _distinct(values)


def number(field: str, value: float, *, minimum: float, maximum: float) -> float:
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise InvalidArgumentError(field, f"must be between {minimum:g} and {maximum:g}, got {value!r}")
    return value


def integer(field: str, value: int, *, minimum: int, maximum: int) -> int:
    if not minimum <= value <= maximum:
        raise InvalidArgumentError(field, f"must be between {minimum} and {maximum}, got {value}")
    return value


def enum_value(field: str, value: EnumValue, enum: EnumTypeWrapper) -> EnumValue:
    """A defined, non-zero value of a proto enum (0 is always UNSPECIFIED, i.e. missing)."""
    if value == 0:
        raise InvalidArgumentError(field, f"is required (one of {', '.join(enum.keys()[1:])})")
    if value not in enum.values():
        raise InvalidArgumentError(field, f"unknown value {value} (one of {', '.join(enum.keys()[1:])})")
    return value


def timestamp(
    field: str,
    parent: Message,
    name: str,
    *,
    required: bool,
    not_after: datetime | None = None,
) -> datetime | None:
    """`parent.<name>` (a google.protobuf.Timestamp) as an aware UTC datetime; None when unset
    and not required. `not_after` bounds it from above (e.g. "not more than a day ahead")."""
    if not parent.HasField(name):
        if required:
            raise InvalidArgumentError(field, "is required")
        return None
    ts: Timestamp = getattr(parent, name)
    if not (_MIN_SECONDS <= ts.seconds <= _MAX_SECONDS and 0 <= ts.nanos < 1_000_000_000):
        raise InvalidArgumentError(field, "must be between 1970-01-01 and 9999-12-31 with valid nanos")
    moment = ts.ToDatetime(tzinfo=UTC)
    if not_after is not None and moment > not_after:
        raise InvalidArgumentError(field, f"must not be after {not_after.isoformat()}, got {moment.isoformat()}")
    return moment


def time_range(start_field: str, start: datetime | None, end_field: str, end: datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        raise InvalidArgumentError(end_field, f"must be after {start_field}")


def _distinct(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
