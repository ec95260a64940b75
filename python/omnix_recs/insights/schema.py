"""The customer-insights document: its JSON schema and the validator every writer passes.

Bedrock receives `INSIGHTS_SCHEMA` as the input schema of the one tool it must call and the
local analyst writes the same structure, so callers cannot tell the two apart except by
`source`. Validation is strict (no unknown keys, bounded lengths) and semantic: a model may only
cite products that were in its facts. The validator covers just the part of JSON Schema the
document uses, to keep `jsonschema` out of the runtime dependencies; the tests check they agree.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from omnix_recs.domain.profiling import BudgetTier, Lifestyle, PriceSensitivity, Segment

TOOL_NAME = "record_customer_insights"
TOOL_DESCRIPTION = "Record the insights about one supermarket customer, derived only from the facts provided."

_CONFIDENCE = {"type": "number", "minimum": 0, "maximum": 1, "description": "0 = a guess, 1 = certain"}
_EVIDENCE = {
    "type": "array",
    "maxItems": 4,
    "items": {"type": "string", "minLength": 1, "maxLength": 200},
    "description": "short facts from the input that support the judgement",
}


def _judgement(required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [*required, "confidence", "evidence"],
        "properties": {**properties, "confidence": _CONFIDENCE, "evidence": _EVIDENCE},
    }


INSIGHTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["summary", "highlights", "household", "budget", "lifestyle", "lifecycle", "needs", "actions"],
    "properties": {
        "summary": {
            "type": "string",
            "minLength": 20,
            "maxLength": 1200,
            "description": "3-6 plain sentences for a store manager: habits, household, what is due, what changed",
        },
        "highlights": {
            "type": "array",
            "maxItems": 6,
            "items": {"type": "string", "minLength": 1, "maxLength": 200},
            "description": "the most useful observations, one sentence each",
        },
        "household": _judgement(["size"], size={"type": "integer", "minimum": 1, "maximum": 8}),
        "budget": _judgement(
            ["tier", "price_sensitivity"],
            tier={"type": "string", "enum": [t.value for t in BudgetTier]},
            price_sensitivity={"type": "string", "enum": [p.value for p in PriceSensitivity]},
        ),
        "lifestyle": {
            "type": "array",
            "maxItems": len(Lifestyle),
            "items": _judgement(["trait"], trait={"type": "string", "enum": [t.value for t in Lifestyle]}),
        },
        "lifecycle": _judgement(["segment"], segment={"type": "string", "enum": [s.value for s in Segment]}),
        "needs": {
            "type": "array",
            "maxItems": 10,
            "description": "products the customer will need soon, only product ids present in the facts",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["product_id", "when", "reason"],
                "properties": {
                    "product_id": {"type": "string", "minLength": 1, "maxLength": 128},
                    "when": {"type": "string", "enum": ["due_now", "this_week", "later"]},
                    "reason": {"type": "string", "minLength": 1, "maxLength": 200},
                },
            },
        },
        "actions": {
            "type": "array",
            "maxItems": 4,
            "description": "what the store could do for this customer",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["action", "reason"],
                "properties": {
                    "action": {"type": "string", "minLength": 1, "maxLength": 200},
                    "reason": {"type": "string", "minLength": 1, "maxLength": 200},
                },
            },
        },
    },
}


class InsightsValidationError(ValueError):
    """The document breaks the schema; `path` locates the first problem ("needs[2].when")."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path or '(document)'}: {message}")


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def _check(value: Any, schema: dict[str, Any], path: str) -> None:
    expected = schema.get("type")
    if expected is not None:
        # bool is an int in Python but not in JSON; an integral float is a JSON integer.
        is_bool = isinstance(value, bool)
        if expected == "integer" and isinstance(value, float) and value.is_integer():
            pass
        elif not isinstance(value, _TYPES[expected]) or (is_bool and expected != "boolean"):
            raise InsightsValidationError(path, f"expected {expected}, got {type(value).__name__}")
    if "enum" in schema and value not in schema["enum"]:
        raise InsightsValidationError(path, f"must be one of {schema['enum']}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise InsightsValidationError(path, f"must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise InsightsValidationError(path, f"must be <= {schema['maximum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise InsightsValidationError(path, f"must have at least {schema['minLength']} characters")
        if len(value) > schema.get("maxLength", len(value)):
            raise InsightsValidationError(path, f"must have at most {schema['maxLength']} characters")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            raise InsightsValidationError(path, f"must have at least {schema['minItems']} items")
        if len(value) > schema.get("maxItems", len(value)):
            raise InsightsValidationError(path, f"must have at most {schema['maxItems']} items")
        for i, item in enumerate(value):
            _check(item, schema.get("items", {}), f"{path}[{i}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                raise InsightsValidationError(_join(path, name), "is required")
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(properties))
            if extra:
                raise InsightsValidationError(_join(path, extra[0]), "is not allowed")
        for name, item in value.items():
            if name in properties:
                _check(item, properties[name], _join(path, name))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def validate_insights(document: Any, known_product_ids: Collection[str]) -> dict[str, Any]:
    """Return `document` if it satisfies `INSIGHTS_SCHEMA` and cites only known products;
    otherwise raise `InsightsValidationError` naming the first offending path."""
    _check(document, INSIGHTS_SCHEMA, "")
    valid: dict[str, Any] = document  # the schema's top level is an object
    for i, need in enumerate(valid["needs"]):
        if need["product_id"] not in known_product_ids:
            raise InsightsValidationError(f"needs[{i}].product_id", f"{need['product_id']!r} is not in the facts")
    return valid
