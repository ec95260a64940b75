"""GetRecommendations responses built from a ranking's serialised body plus each serving's id."""

from __future__ import annotations

import pytest

from omnix_recs._proto.omnix.v1 import recommendation_pb2 as pb
from omnix_recs.api.recommendation import _recommendations_body
from omnix_recs.api.response_cache import ResponseBodies, send_as_is, with_recommendation_id
from omnix_recs.domain.models import RecommendedItem
from omnix_recs.engine.served_lists import Recommendations, new_recommendation_id

ITEMS = (
    RecommendedItem("milk", 0.91, 0.8, ("you usually buy this every 7 days",)),
    RecommendedItem("oat", 0.5, 0.61, ("often bought with Whole Milk", "popular this week")),
)
NO_EXPERIMENT = ((), pb.STRATEGY_BALANCED)
IN_TWO_EXPERIMENTS = ((("exp-a", "treatment"), ("exp-b", "control")), pb.STRATEGY_DISCOVER)


def served(recommendation_id: str, ranking_id: str = "r-1", items=ITEMS) -> Recommendations:
    return Recommendations(recommendation_id, "v7", "balanced", items, ranking_id=ranking_id)


def expected(answer: Recommendations, stamp) -> pb.GetRecommendationsResponse:
    assignments, strategy = stamp
    return pb.GetRecommendationsResponse(
        items=[
            pb.Recommendation(product_id=i.product_id, score=i.score, confidence=i.confidence, reasons=i.reasons)
            for i in answer.items
        ],
        model_version=answer.model_version,
        recommendation_id=answer.recommendation_id,
        strategy=strategy,
        experiment_id=assignments[0][0] if assignments else "",
        arm_id=assignments[0][1] if assignments else "",
        assignments=[pb.ExperimentAssignment(experiment_id=e, arm_id=a) for e, a in assignments],
    )


@pytest.mark.parametrize("stamp", [NO_EXPERIMENT, IN_TWO_EXPERIMENTS], ids=["no-experiment", "two-experiments"])
@pytest.mark.parametrize(
    "recommendation_id",
    [new_recommendation_id(), "", "x" * 127, "x" * 128, "é" * 300],
    ids=["usual", "empty", "one-byte-length", "two-byte-length", "multibyte"],
)
def test_a_body_with_an_id_parses_as_the_whole_response(recommendation_id, stamp):
    answer = served(recommendation_id)
    wire = with_recommendation_id(_recommendations_body(answer, stamp), recommendation_id)
    assert pb.GetRecommendationsResponse.FromString(wire) == expected(answer, stamp)


def test_each_ranking_is_serialised_once_per_stamp_and_each_serving_keeps_its_id():
    built: list[str] = []

    def build(answer, stamp):
        built.append(answer.ranking_id)
        return _recommendations_body(answer, stamp)

    bodies = ResponseBodies(build)
    first, again = served(new_recommendation_id()), served(new_recommendation_id())
    responses = [bodies.response(a, NO_EXPERIMENT) for a in (first, again)]
    assert [pb.GetRecommendationsResponse.FromString(r).recommendation_id for r in responses] == [
        first.recommendation_id,
        again.recommendation_id,
    ]
    assert built == ["r-1"] and (bodies.hits, bodies.misses) == (1, 1)

    in_experiment = pb.GetRecommendationsResponse.FromString(bodies.response(first, IN_TWO_EXPERIMENTS))
    assert in_experiment == expected(first, IN_TWO_EXPERIMENTS)  # another stamp: another body
    reranked = served("id-2", ranking_id="r-2", items=ITEMS[:1])
    assert pb.GetRecommendationsResponse.FromString(bodies.response(reranked, NO_EXPERIMENT)) == expected(
        reranked, NO_EXPERIMENT
    )
    assert built == ["r-1", "r-1", "r-2"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bodies_are_kept_while_their_ranking_may_be_served_and_within_the_byte_bound():
    clock = Clock()
    size = len(_recommendations_body(served("x"), NO_EXPERIMENT))
    bodies = ResponseBodies(_recommendations_body, keep_s=60, max_bytes=2 * size, clock=clock)
    for ranking in ("r-1", "r-2", "r-3"):  # the third pushes the oldest out
        bodies.response(served(new_recommendation_id(), ranking), NO_EXPERIMENT)
        clock.now += 1
    assert (len(bodies), bodies.size, bodies.misses) == (2, 2 * size, 3)
    bodies.response(served(new_recommendation_id(), "r-1"), NO_EXPERIMENT)
    assert bodies.misses == 4  # made again

    clock.now += 61  # every ranking too old to be served again: the next one made lets them go
    bodies.response(served(new_recommendation_id(), "r-4"), NO_EXPERIMENT)
    assert len(bodies) == 1 and bodies.size == size


def test_a_list_without_a_ranking_id_is_never_kept():
    bodies = ResponseBodies(_recommendations_body)
    answer = served("one-off", ranking_id="")
    response = pb.GetRecommendationsResponse.FromString(bodies.response(answer, NO_EXPERIMENT))
    assert response == expected(answer, NO_EXPERIMENT) and len(bodies) == 0


@pytest.mark.parametrize(
    "response",
    [b"\x1a\x02id", pb.GetRecommendationsResponse(recommendation_id="id")],
    ids=["bytes", "message"],
)
def test_responses_are_sent_as_bytes_either_way(response):
    assert send_as_is(response) == b"\x1a\x02id"
