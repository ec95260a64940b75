"""The insights schema and its hand-written validator (checked against `jsonschema`)."""

from __future__ import annotations

import copy

import pytest
from fake_bedrock import VALID_INSIGHTS

from omnix_recs.insights.schema import INSIGHTS_SCHEMA, InsightsValidationError, validate_insights

jsonschema = pytest.importorskip("jsonschema")


def changed(path: str, value: object) -> dict:
    """VALID_INSIGHTS with the value at a dotted path replaced (`...` deletes it)."""
    document = copy.deepcopy(VALID_INSIGHTS)
    *parents, last = path.split(".")
    target = document
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is ...:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return document


INVALID = [
    ("summary", ..., "summary"),
    ("summary", "short", "summary"),
    ("summary", "x" * 1201, "summary"),
    ("household.size", 0, "household.size"),
    ("household.size", 2.5, "household.size"),
    ("household.size", True, "household.size"),
    ("household.confidence", 1.2, "household.confidence"),
    ("budget.tier", "luxury", "budget.tier"),
    ("lifecycle.segment", "churned", "lifecycle.segment"),
    ("lifestyle", [{"trait": "pets", "confidence": 0.5}], "lifestyle[0].evidence"),
    ("lifestyle", [{"trait": "pets", "confidence": 0.5, "evidence": [], "why": "x"}], "lifestyle[0].why"),
    ("actions", [{"action": "a", "reason": "b"}] * 5, "actions"),
    ("highlights", ["ok", ""], "highlights[1]"),
    ("extra", "field", "extra"),
]


@pytest.mark.parametrize(("path", "value", "where"), INVALID)
def test_invalid_documents_are_rejected_naming_the_path(path, value, where):
    document = changed(path, value)
    with pytest.raises(InsightsValidationError) as caught:
        validate_insights(document, known_product_ids=set())
    assert caught.value.path == where
    # The reference implementation agrees that the document is invalid.
    assert not jsonschema.Draft202012Validator(INSIGHTS_SCHEMA).is_valid(document)


def test_valid_document_passes_both_validators():
    jsonschema.Draft202012Validator.check_schema(INSIGHTS_SCHEMA)
    assert jsonschema.Draft202012Validator(INSIGHTS_SCHEMA).is_valid(VALID_INSIGHTS)
    assert validate_insights(copy.deepcopy(VALID_INSIGHTS), set()) == VALID_INSIGHTS


def test_needs_may_only_cite_products_from_the_facts():
    need = {"product_id": "milk", "when": "due_now", "reason": "weekly"}
    document = changed("needs", [need])
    assert validate_insights(document, {"milk"}) is document
    with pytest.raises(InsightsValidationError, match="needs\\[0\\].product_id: 'milk' is not in the facts"):
        validate_insights(document, {"bread"})
