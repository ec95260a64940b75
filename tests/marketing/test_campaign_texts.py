"""Campaign texts through Bedrock (a local Converse-compatible server): the request, the text
taken, and every failure keeping the local template's text, message by message."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_bedrock import FakeBedrock, Reply, error, isolate_aws_credentials
from marketing_shop import NOW, SHOPPERS, seed

from omnix_recs._proto.omnix.v1 import marketing_pb2 as pb
from omnix_recs.api.marketing import campaign_service
from omnix_recs.app import AppContext
from omnix_recs.breaker import CircuitBreaker, CircuitState
from omnix_recs.config import Settings
from omnix_recs.engine.train import train_model
from omnix_recs.insights.bedrock import BedrockAnalyst
from omnix_recs.marketing.campaigns import CampaignService
from omnix_recs.marketing.messages import FOOTER, OPENINGS
from omnix_recs.marketing.records import CampaignKind, CampaignSpec, QuietHours
from omnix_recs.marketing.writer import TOOL_NAME, MessageWriter, validate_text
from omnix_recs.store import open_store

MODEL_ID = "anthropic.claude-test-v1:0"
TEXT = {"subject": "Fresh picks for your week", "opening": "Written by the fake Bedrock: a few favourites."}
# Everyone with marketing consent who has shopped: six messages, none held out.
AUDIENCE = 6


def text_reply(tool_input: object, **fields: object) -> Reply:
    return Reply(
        body={
            "output": {
                "message": {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "tooluse_1", "name": TOOL_NAME, "input": tool_input}}],
                }
            },
            "stopReason": "tool_use",
        },
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_aws_credentials(monkeypatch, tmp_path)


@pytest.fixture
def fake_bedrock() -> Iterator[FakeBedrock]:
    fake = FakeBedrock().start()
    fake.default = text_reply(TEXT)
    yield fake
    fake.stop()


def bedrock_settings(tmp_path: Path, url: str) -> Settings:
    return dataclasses.replace(
        Settings(model_dir=str(tmp_path / "models")),
        bedrock_enabled=True,
        bedrock_endpoint_url=url,
        bedrock_model_id=MODEL_ID,
        aws_region="eu-west-1",
    )


@pytest.fixture
def app(tmp_path: Path, fake_bedrock: FakeBedrock) -> Iterator[AppContext]:
    settings = bedrock_settings(tmp_path, fake_bedrock.url)
    store = open_store(f"sqlite:///{tmp_path / 'shop.db'}")
    seed(store)
    train_model(store, settings)
    app = AppContext.create(settings, store)
    yield app
    app.close()
    store.close()


@pytest.fixture
def make_campaigns(app: AppContext) -> Iterator[object]:
    analysts: list[BedrockAnalyst] = []

    def make(*, breaker: CircuitBreaker | None = None, budget_s: float = 5.0) -> CampaignService:
        service = campaign_service(app)
        analyst = BedrockAnalyst(app.settings, breaker=breaker)
        analysts.append(analyst)
        service.writer = MessageWriter(analyst, budget_s=budget_s, concurrency=3)
        return service

    yield make
    for analyst in analysts:
        analyst.close()


def spec(**fields: object) -> CampaignSpec:
    values: dict[str, object] = {
        "name": "weekly picks",
        "kind": CampaignKind.PERSONALIZED_EMAIL,
        "as_of": NOW,
        "holdout_percent": 0,
        "quiet_hours": QuietHours(0, 0),
        "offer": "10% off your next shop",
    }
    return CampaignSpec(**{**values, **fields})  # type: ignore[arg-type]


def test_bedrock_writes_subject_and_opening_the_template_keeps_the_rest(make_campaigns, fake_bedrock):
    campaigns = make_campaigns()
    campaign = campaigns.create(spec())
    messages = campaigns.all_messages(campaign.campaign_id)

    assert campaign.bedrock_messages == campaign.audience_size == len(messages) == AUDIENCE
    assert {m.source for m in messages} == {"bedrock"}
    wendy = next(m for m in messages if m.customer_id == "weekly")
    assert wendy.subject == "Wendy, fresh picks for your week"
    assert wendy.body.startswith("Hello Wendy,\n\n" + TEXT["opening"] + "\n\n- ")
    assert "Your offer: 10% off your next shop" in wendy.body and wendy.body.endswith(FOOTER)
    assert all(f"- {i.name} ({i.price:.2f})" in wendy.body for i in wendy.items)
    nameless = next(m for m in messages if m.customer_id == "regular")
    assert nameless.subject == TEXT["subject"] and nameless.body.startswith("Hello,\n")

    assert len(fake_bedrock.requests) == AUDIENCE
    request = fake_bedrock.requests[0]
    assert request.model_id == MODEL_ID
    assert request.body["toolConfig"]["toolChoice"] == {"tool": {"name": TOOL_NAME}}
    (tool,) = request.body["toolConfig"]["tools"]
    assert tool["toolSpec"]["inputSchema"]["json"]["required"] == ["subject", "opening"]
    facts = json.loads(request.body["messages"][0]["content"][0]["text"].split("\n", 1)[1])
    assert facts["offer"] == "10% off your next shop" and facts["products"]
    sent = json.dumps([r.body for r in fake_bedrock.requests])
    for customer_id, (*_, name) in SHOPPERS.items():  # nobody is named or identified
        assert f'"{customer_id}"' not in sent and (not name or name not in sent)


def test_a_dry_run_asks_bedrock_for_its_preview_only(make_campaigns, fake_bedrock):
    campaign = make_campaigns().create(spec(dry_run=True))
    assert [m.source for m in campaign.preview] == ["bedrock"] * AUDIENCE
    assert len(fake_bedrock.requests) == AUDIENCE


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(text_reply({"subject": "Hi"}), id="no opening"),
        pytest.param(text_reply({**TEXT, "subject": "Deals at https://example.com"}), id="a link"),
        pytest.param(text_reply({**TEXT, "opening": "x" * 601}), id="too long"),
        pytest.param(text_reply({**TEXT, "discount": "50%"}), id="an extra field"),
        pytest.param(text_reply("a poem about milk"), id="not an object"),
        pytest.param(Reply(), id="another tool's call"),
        pytest.param(error(403, "AccessDeniedException"), id="access denied"),
        pytest.param(text_reply(TEXT, delay_s=3.0), id="slower than the budget"),
    ],
)
def test_every_failure_keeps_the_local_text(make_campaigns, fake_bedrock, reply):
    fake_bedrock.default = reply
    campaigns = make_campaigns(budget_s=1.0)
    campaign = campaigns.create(spec())
    messages = campaigns.all_messages(campaign.campaign_id)

    assert campaign.bedrock_messages == 0 and len(messages) == AUDIENCE
    assert {m.source for m in messages} == {"local"}
    wendy = next(m for m in messages if m.customer_id == "weekly")
    assert wendy.subject.startswith("Wendy, picked for you this week: ")
    assert OPENINGS[CampaignKind.PERSONALIZED_EMAIL] in wendy.body


def test_one_failed_answer_costs_only_its_own_message(make_campaigns, fake_bedrock):
    fake_bedrock.script = [text_reply({"subject": ""})]
    campaigns = make_campaigns()
    campaign = campaigns.create(spec())
    sources = sorted(m.source for m in campaigns.all_messages(campaign.campaign_id))
    assert sources == ["bedrock"] * (AUDIENCE - 1) + ["local"] and campaign.bedrock_messages == AUDIENCE - 1


def test_an_open_circuit_writes_locally_without_calling(make_campaigns, fake_bedrock):
    clock = [1000.0]
    breaker = CircuitBreaker(failure_threshold=2, cool_down_s=30.0, clock=lambda: clock[0])
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN

    campaigns = make_campaigns(breaker=breaker)
    campaign = campaigns.create(spec())
    assert campaign.bedrock_messages == 0 and fake_bedrock.requests == []
    assert {m.source for m in campaigns.all_messages(campaign.campaign_id)} == {"local"}

    # Cool-down over: one trial call goes through (writers running beside it still write
    # locally) and its success closes the circuit for the rest.
    clock[0] += 31.0
    campaign = campaigns.create(spec(max_messages_per_week=50))
    assert 1 <= campaign.bedrock_messages <= AUDIENCE and breaker.state is CircuitState.CLOSED
    assert campaigns.create(spec(max_messages_per_week=50)).bedrock_messages == AUDIENCE


def test_repeated_failures_open_the_circuit_mid_campaign(make_campaigns, fake_bedrock):
    fake_bedrock.default = error(403, "AccessDeniedException")
    breaker = CircuitBreaker(failure_threshold=2, cool_down_s=300.0)
    campaign = make_campaigns(breaker=breaker).create(spec())
    assert campaign.bedrock_messages == 0 and breaker.state is CircuitState.OPEN
    # Three writers in flight when the circuit opened: at most those three more calls went out.
    assert 2 <= len(fake_bedrock.requests) <= 2 + 3


def test_the_source_reaches_grpc_clients(tmp_path, fake_bedrock, running_server):
    settings = bedrock_settings(tmp_path, fake_bedrock.url)
    server = running_server(settings=settings, prepare=lambda store: (seed(store), train_model(store, settings)))
    from omnix_recs._proto.omnix.v1 import marketing_pb2_grpc

    marketing = server.stub(marketing_pb2_grpc.MarketingServiceStub)
    campaign = marketing.CreateCampaign(
        pb.CreateCampaignRequest(
            name="t", kind=pb.CAMPAIGN_KIND_WIN_BACK, holdout_percent=0, quiet_hours=pb.QuietHours()
        )
    )
    assert campaign.bedrock_messages == 1
    (message,) = marketing.ListCampaignMessages(
        pb.ListCampaignMessagesRequest(campaign_id=campaign.campaign_id)
    ).messages
    assert message.source == "bedrock" and message.subject == "Wendy, fresh picks for your week"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"subject": "  Time   to\nrestock ", "opening": " Milk soon. "}, ("Time to restock", "Milk soon.")),
        ({"subject": "x", "opening": "<b>bold</b>"}, "opening: contains a link or markup"),
        ({"subject": "y" * 101, "opening": "z"}, "subject: longer than 100 characters"),
        ({"subject": 3, "opening": "z"}, "subject: must be non-empty text"),
        ([], "expected an object, got list"),
    ],
)
def test_validate_text(answer, expected):
    if isinstance(expected, tuple):
        assert validate_text(answer) == expected
    else:
        with pytest.raises(ValueError, match=expected):
            validate_text(answer)
