"""The local analyst: writes the insights document from the facts, deterministically.

It answers whenever Bedrock is disabled, failing, slow or wrong, so it must always produce a
valid document (the same schema) and a readable summary, from the same PII-free facts Bedrock
would have seen. The same facts always give the same words.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from omnix_recs.insights.facts import cited_product_ids
from omnix_recs.insights.schema import validate_insights

MAX_NEEDS = 10
MAX_ACTIONS = 4
MAX_NAMES_IN_SENTENCE = 3
TRAIT_PHRASES = {
    "young_children": "shops for young children",
    "pets": "keeps pets",
    "vegetarian": "eats vegetarian",
    "vegan": "eats vegan",
    "health_focused": "favours fresh and organic food",
    "entertains_often": "often entertains (drinks, party food, big shops)",
}
SEGMENT_PHRASES = {
    "new": "A new customer",
    "regular": "A regular customer",
    "vip": "A VIP customer (top 10 % of spend over the last 90 days)",
    "at_risk": "At risk of churning",
}


def _names(items: list[dict[str, Any]]) -> str:
    # Shelf names often contain commas ("Skim Milk, 2 L"), so the list is separated by semicolons.
    names = [item["name"] for item in items[:MAX_NAMES_IN_SENTENCE]]
    more = len(items) - len(names)
    text = "; ".join(names)
    return f"{text} and {more} more" if more > 0 else text


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _judgement(section: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        **fields,
        "confidence": round(float(section["confidence"]), 3),
        "evidence": [_clip(e) for e in section["evidence"][:4]],
    }


def _shopping_sentence(facts: dict[str, Any], *, expect_trip: bool) -> str:
    shopping, history = facts["shopping"], facts["history"]
    if not history["trips"]:
        return "No purchases yet."
    parts = [f"{history['trips']} trips over {history['days']:.0f} days"]
    if shopping["every_days"] is not None:
        habit = f"shops about every {shopping['every_days']:.0f} days"
        if shopping["usual_weekday"]:
            habit += f", usually on {shopping['usual_weekday']}"
            if shopping["usual_daypart"]:
                habit += f" {shopping['usual_daypart']}s"
        parts.append(habit)
    sentence = "; ".join(parts) + f", about {history['items_per_trip']:.0f} items per trip."
    if shopping["next_trip"] and expect_trip:
        sentence += f" Next trip expected on {shopping['next_trip']}."
    return sentence[0].upper() + sentence[1:]


def _profile_sentence(facts: dict[str, Any]) -> str:
    profile = facts["profile"]
    household, budget = profile["household"], profile["budget"]
    people = "a single shopper" if household["size"] == 1 else f"a household of {household['size']}"
    sentence = f"Looks like {people} with a {budget['tier']} budget and {budget['price_sensitivity']} price sensitivity"
    traits = [TRAIT_PHRASES[t["trait"]] for t in profile["lifestyle"]]
    if traits:
        sentence += "; " + ", ".join(traits)
    return sentence + "."


def _due_sentence(facts: dict[str, Any]) -> str | None:
    due = facts["due_now"]
    if not due:
        return None
    first = due[0]
    detail = ""
    if first["every_days"] is not None and first["days_since_last"] is not None:
        detail = (
            f" ({first['name']} every {first['every_days']:.0f} days, last {first['days_since_last']:.0f} days ago)"
        )
    return f"Due on the next trip: {_names(due)}{detail}."


def _trend_sentences(facts: dict[str, Any]) -> list[str]:
    by_trend: dict[str, list[dict[str, Any]]] = {}
    for trend in facts["trends"]:
        by_trend.setdefault(trend["trend"], []).append(trend)
    sentences = []
    if "stopped" in by_trend:
        first = by_trend["stopped"][0]
        example = f"{first['name']}: " if len(by_trend["stopped"]) > 1 else ""
        sentences.append(f"Stopped buying {_names(by_trend['stopped'])} ({example}{first['evidence']}).")
    if "fading" in by_trend:
        sentences.append(f"Buying {_names(by_trend['fading'])} less often lately.")
    if "growing" in by_trend:
        sentences.append(f"Buying {_names(by_trend['growing'])} more often lately.")
    return sentences


def _lifecycle_sentence(facts: dict[str, Any]) -> str:
    lifecycle = facts["profile"]["lifecycle"]
    phrase = SEGMENT_PHRASES[lifecycle["segment"]]
    # A regular customer's evidence repeats the opening sentence (trips, last visit).
    evidence = "; ".join(lifecycle["evidence"][:2]) if lifecycle["segment"] != "regular" else ""
    return f"{phrase}: {evidence}." if evidence else f"{phrase}."


def _needs(facts: dict[str, Any]) -> list[dict[str, Any]]:
    needs = [
        {
            "product_id": item["product_id"],
            "when": "due_now",
            "reason": _clip(f"bought every {item['every_days']:.0f} days, last {item['days_since_last']:.0f} days ago"),
        }
        for item in facts["due_now"]
        if item["every_days"] is not None
    ]
    for item in facts["coming_up"]:
        when = "this_week" if _days_until(facts["as_of"], item["expected"]) <= 7 else "later"
        needs.append({"product_id": item["product_id"], "when": when, "reason": f"expected around {item['expected']}"})
    return needs[:MAX_NEEDS]


def _days_until(as_of: str, day: str) -> int:
    return (date.fromisoformat(day) - date.fromisoformat(as_of)).days


def _actions(facts: dict[str, Any]) -> list[dict[str, Any]]:
    profile = facts["profile"]
    segment = profile["lifecycle"]["segment"]
    actions = []
    if segment == "at_risk":
        actions.append(
            {"action": "Send a win-back offer on their usual products", "reason": "they are well past their usual trip"}
        )
    if facts["due_now"]:
        actions.append(
            {
                "action": _clip(f"Remind them about {_names(facts['due_now'])}"),
                "reason": "these are due on the next trip",
            }
        )
    stopped = [t for t in facts["trends"] if t["trend"] == "stopped"]
    if stopped:
        actions.append(
            {"action": _clip(f"Suggest an alternative to {stopped[0]['name']}"), "reason": "they stopped buying it"}
        )
    if segment == "vip":
        actions.append(
            {"action": "Offer a loyalty reward or early access", "reason": "one of the top 10 % of spenders"}
        )
    elif segment == "new":
        actions.append(
            {
                "action": "Send a welcome offer in their favourite aisles",
                "reason": "a new customer still forming habits",
            }
        )
    top = facts["top_departments"][0]["name"] if facts["top_departments"] else "their favourite aisles"
    if profile["budget"]["price_sensitivity"] == "high":
        actions.append(
            {
                "action": _clip(f"Show value packs and store-brand deals in {top}"),
                "reason": "they often choose value-priced options",
            }
        )
    elif profile["budget"]["tier"] == "premium":
        actions.append(
            {"action": _clip(f"Feature premium and new products in {top}"), "reason": "they pay above typical prices"}
        )
    return actions[:MAX_ACTIONS]


def write_insights(facts: dict[str, Any]) -> dict[str, Any]:
    """The insights document for `facts` (valid against `INSIGHTS_SCHEMA`)."""
    profile = facts["profile"]
    # For a customer who has stayed away, a next-trip date and a list of everything they no
    # longer buy say less than the one fact that matters: they are at risk.
    away = profile["lifecycle"]["segment"] == "at_risk"
    due = None if away else _due_sentence(facts)
    highlights = [
        _shopping_sentence(facts, expect_trip=not away),
        _profile_sentence(facts),
        *([due] if due else []),
        *([] if away else _trend_sentences(facts)),
        _lifecycle_sentence(facts),
    ]
    document = {
        "summary": _clip(" ".join(highlights), 1200),
        "highlights": [_clip(h) for h in highlights[:6]],
        "household": _judgement(profile["household"], size=profile["household"]["size"]),
        "budget": _judgement(
            profile["budget"], tier=profile["budget"]["tier"], price_sensitivity=profile["budget"]["price_sensitivity"]
        ),
        "lifestyle": [_judgement(t, trait=t["trait"]) for t in profile["lifestyle"]],
        "lifecycle": _judgement(profile["lifecycle"], segment=profile["lifecycle"]["segment"]),
        "needs": _needs(facts),
        "actions": _actions(facts),
    }
    # Our own writer obeys the same contract as Bedrock; a failure here is a bug, not bad luck.
    return validate_insights(document, cited_product_ids(facts))
