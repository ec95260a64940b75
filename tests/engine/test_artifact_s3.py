"""Model artifacts in S3 (engine/artifact_store.py, engine/s3_artifacts.py), against moto's S3
server on 127.0.0.1: upload with the manifest last, download into a host's cache, reuse of the
cache, damaged uploads refused, failed uploads undone, bad URLs named, and `omnix train` to S3
followed by a server answering from the downloaded copy.

"Another host" is a `ModelHolder` or an activation with a cache directory of its own, empty.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import EndpointConnectionError
from local_s3 import LocalS3

from omnix_recs import cli
from omnix_recs._proto.omnix.v1 import recommendation_pb2 as pb
from omnix_recs._proto.omnix.v1 import recommendation_pb2_grpc
from omnix_recs.config import Settings
from omnix_recs.engine import registry
from omnix_recs.engine.artifact import ARRAY_NAMES, load_model
from omnix_recs.engine.artifact_store import ModelDestination
from omnix_recs.engine.build import BuildParameters, build_model
from omnix_recs.engine.registry import ModelHolder
from omnix_recs.engine.train import train_model
from omnix_recs.errors import FailedPreconditionError, InvalidArgumentError, UnavailableError
from omnix_recs.s3 import S3Location, s3_client
from omnix_recs.store.base import ModelRecord, Store

PARAMS = BuildParameters(neighbours=4, basket_min_support=1)
PREFIX = "omnix/models"
ARTIFACT_FILES = sorted([f"{name}.npy" for name in ARRAY_NAMES] + ["item_ids.json", "manifest.json", "contents.json"])


@pytest.fixture
def shoppers(shop: Any) -> Any:
    """The tiny supermarket of conftest.py with two shoppers' history."""
    shop.weekly_milk_shopper("alice")
    shop.customer("bob")
    shop.trips("bob", [(30, ["pasta", "sauce", "bread"]), (16, ["pasta", "sauce"]), (2, ["milk", "bread"])])
    return shop


@pytest.fixture
def trainer(local_s3: LocalS3, bucket: str, tmp_path: Path) -> Settings:
    """The training host: models go to the test's bucket, its local copies to its own cache."""
    return Settings(model_dir=local_s3.url(bucket, PREFIX), model_cache_dir=str(tmp_path / "trainer-cache"))


@pytest.fixture
def other_host(tmp_path: Path) -> Settings:
    return Settings(model_cache_dir=str(tmp_path / "other-host-cache"))


def train(store: Store, settings: Settings, **kwargs: Any) -> ModelRecord:
    return train_model(store, settings, parameters=PARAMS, **kwargs)


def version_key(record: ModelRecord, name: str) -> str:
    return f"{PREFIX}/{record.version}/{name}"


@contextmanager
def on_upload(model_dir: str, handler: Callable[[str], None]) -> Iterator[None]:
    """Calls `handler(key)` before each object the product uploads (through botocore's event
    hooks on the client the product uses); a handler that raises makes that upload fail."""
    events = s3_client(S3Location.parse(model_dir)).meta.events

    def before_put(params: dict[str, Any], **_: Any) -> None:
        handler(params["Key"])

    events.register("provide-client-params.s3.PutObject", before_put)
    try:
        yield
    finally:
        events.unregister("provide-client-params.s3.PutObject", before_put)


def test_training_uploads_every_file_with_the_manifest_last(
    shoppers: Any, trainer: Settings, local_s3: LocalS3, bucket: str
) -> None:
    uploaded: list[str] = []
    with on_upload(trainer.model_dir, uploaded.append):
        record = train(shoppers.store, trainer)

    assert (
        record.artifact_uri == f"s3://{bucket}/{PREFIX}/{record.version}?endpoint={local_s3.endpoint}&region=us-east-1"
    )
    assert shoppers.store.active_model() == record
    assert local_s3.keys(bucket) == [version_key(record, name) for name in ARTIFACT_FILES]
    assert uploaded[-2:] == [version_key(record, "contents.json"), version_key(record, "manifest.json")]
    assert sorted(uploaded) == local_s3.keys(bucket)

    local_copy = Path(trainer.model_cache_dir) / record.version  # the trainer's copy, kept as its cache
    contents = json.loads(
        local_s3.client.get_object(Bucket=bucket, Key=version_key(record, "contents.json"))["Body"].read()
    )
    assert {name: entry["bytes"] for name, entry in contents["files"].items()} == {
        path.name: path.stat().st_size for path in local_copy.iterdir()
    }
    manifest = json.loads(
        local_s3.client.get_object(Bucket=bucket, Key=version_key(record, "manifest.json"))["Body"].read()
    )
    assert manifest["version"] == record.version and manifest["metrics"] == record.metrics


def test_another_host_downloads_the_version_into_its_cache(
    shoppers: Any, trainer: Settings, other_host: Settings
) -> None:
    record = train(shoppers.store, trainer)
    holder = ModelHolder(shoppers.store, settings=other_host, check_every_s=0.0)
    assert holder.reload_if_changed() is True

    model = holder.require()
    cache = Path(other_host.model_cache_dir)
    assert model.version == record.version and model.item_ids == sorted(shoppers.products)
    assert [p.name for p in cache.iterdir()] == [record.version]  # no staging directory left
    assert isinstance(model.popularity, np.memmap) and Path(model.popularity.filename).parent == cache / record.version
    original = load_model(Path(trainer.model_cache_dir) / record.version)
    for name in ARRAY_NAMES:
        np.testing.assert_array_equal(getattr(model, name), getattr(original, name))


def test_a_cached_copy_is_loaded_without_asking_s3(
    shoppers: Any, trainer: Settings, other_host: Settings, local_s3: LocalS3, bucket: str
) -> None:
    record = train(shoppers.store, trainer)
    ModelHolder(shoppers.store, settings=other_host).reload_if_changed()  # the host's first process downloads
    for key in local_s3.keys(bucket):
        local_s3.client.delete_object(Bucket=bucket, Key=key)

    second_process = ModelHolder(shoppers.store, settings=other_host)
    assert second_process.reload_if_changed() is True and second_process.require().version == record.version


def test_a_damaged_cached_copy_is_downloaded_again(shoppers: Any, trainer: Settings, other_host: Settings) -> None:
    record = train(shoppers.store, trainer)
    ModelHolder(shoppers.store, settings=other_host).reload_if_changed()
    cached = Path(other_host.model_cache_dir) / record.version / "popularity.npy"
    cached.write_bytes(cached.read_bytes()[:20])

    holder = ModelHolder(shoppers.store, settings=other_host)
    assert holder.reload_if_changed() is True and holder.require().popularity.shape == (len(shoppers.products),)


def truncate(local_s3: LocalS3, bucket: str, key: str) -> None:
    body = local_s3.client.get_object(Bucket=bucket, Key=key)["Body"].read()
    local_s3.client.put_object(Bucket=bucket, Key=key, Body=body[:-8])


def alter(local_s3: LocalS3, bucket: str, key: str) -> None:
    body = local_s3.client.get_object(Bucket=bucket, Key=key)["Body"].read()
    local_s3.client.put_object(Bucket=bucket, Key=key, Body=body[:-1] + bytes([body[-1] ^ 0xFF]))


def delete(local_s3: LocalS3, bucket: str, key: str) -> None:
    local_s3.client.delete_object(Bucket=bucket, Key=key)


def garble(local_s3: LocalS3, bucket: str, key: str) -> None:
    local_s3.client.put_object(Bucket=bucket, Key=key, Body=b"{not json")


DAMAGES = [
    pytest.param(delete, "popularity.npy", r"popularity\.npy: not found", id="deleted array"),
    pytest.param(delete, "manifest.json", r"manifest\.json: missing \(the upload did not finish", id="no manifest"),
    pytest.param(
        truncate, "cooc_sim.npy", r"cooc_sim\.npy: \d+ bytes, the upload wrote \d+ \(truncated", id="truncated array"
    ),
    pytest.param(alter, "seasonal_lift.npy", r"seasonal_lift\.npy: the content differs .*SHA-256", id="altered array"),
    pytest.param(garble, "contents.json", r"contents\.json: not a list of files", id="garbled contents"),
]


@pytest.mark.parametrize(("damage", "file_name", "message"), DAMAGES)
def test_activation_refuses_a_damaged_upload(
    shoppers: Any,
    trainer: Settings,
    other_host: Settings,
    local_s3: LocalS3,
    bucket: str,
    damage: Callable[[LocalS3, str, str], None],
    file_name: str,
    message: str,
) -> None:
    store = shoppers.store
    good = train(store, trainer)
    damaged = train(store, trainer, activate=False)
    damage(local_s3, bucket, version_key(damaged, file_name))

    with pytest.raises(FailedPreconditionError, match=f"model {damaged.version} cannot be activated: .*{message}"):
        registry.activate(store, damaged.version, settings=other_host)
    assert store.active_model().version == good.version  # type: ignore[union-attr]
    assert not Path(other_host.model_cache_dir).exists() or not any(Path(other_host.model_cache_dir).iterdir())


@pytest.mark.parametrize(("damage", "message"), [(delete, "not found"), (truncate, "truncated")])
def test_the_trainers_own_copy_does_not_hide_a_damaged_upload(
    shoppers: Any,
    trainer: Settings,
    local_s3: LocalS3,
    bucket: str,
    damage: Callable[[LocalS3, str, str], None],
    message: str,
) -> None:
    good = train(shoppers.store, trainer)
    damaged = train(shoppers.store, trainer, activate=False)
    damage(local_s3, bucket, version_key(damaged, "item_ids.json"))
    with pytest.raises(FailedPreconditionError, match=f"item_ids.json: .*{message}"):
        registry.activate(shoppers.store, damaged.version, settings=trainer)
    assert shoppers.store.active_model().version == good.version  # type: ignore[union-attr]


def test_a_server_keeps_its_model_when_the_active_upload_is_damaged(
    shoppers: Any,
    trainer: Settings,
    other_host: Settings,
    local_s3: LocalS3,
    bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = shoppers.store
    good = train(store, trainer)
    holder = ModelHolder(store, settings=other_host, check_every_s=0.0)
    holder.reload_if_changed()
    damaged = train(store, trainer, activate=False)
    truncate(local_s3, bucket, version_key(damaged, "popularity.npy"))
    store.activate_model(damaged.version)  # bypassing registry.activate's check, as a bad deploy would

    assert holder.reload_if_changed() is False and holder.require().version == good.version
    assert holder.reload_if_changed() is False
    refusals = [r.message for r in caplog.records if "cannot be loaded" in r.message]
    assert len(refusals) == 1 and "popularity.npy: " in refusals[0] and "truncated" in refusals[0]  # logged once
    assert [p.name for p in Path(other_host.model_cache_dir).iterdir()] == [good.version]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_s3_is_unavailable_and_retried_later(
    shoppers: Any,
    trainer: Settings,
    other_host: Settings,
    local_s3: LocalS3,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # no backoff between attempts at a closed port
    store = shoppers.store
    good = train(store, trainer)
    elsewhere = train(store, trainer, activate=False)
    unreachable = replace(
        elsewhere,
        version="unreachable",
        artifact_uri=elsewhere.artifact_uri.replace(local_s3.endpoint, f"http://127.0.0.1:{closed_port()}"),
    )
    store.save_model(unreachable)

    with pytest.raises(UnavailableError, match="S3 is unavailable"):
        registry.activate(store, "unreachable", settings=other_host)
    assert store.active_model().version == good.version  # type: ignore[union-attr]

    holder = ModelHolder(store, settings=other_host, check_every_s=0.0)
    holder.reload_if_changed()
    store.activate_model("unreachable")
    with caplog.at_level(logging.WARNING, logger="omnix_recs.engine.registry"):
        assert holder.reload_if_changed() is False and holder.reload_if_changed() is False
    assert sum("cannot be fetched now" in r.message for r in caplog.records) == 2  # tried at every check
    assert holder.require().version == good.version


@pytest.mark.parametrize(
    "model_dir",
    [
        pytest.param("s3://", id="no bucket"),
        pytest.param("s3:///omnix/models", id="empty bucket"),
        pytest.param("s3:models/omnix", id="no slashes"),
        pytest.param("s3://Models_Bucket/omnix", id="bad bucket name"),
        pytest.param("s3://AKIA:secret@models/omnix", id="credentials"),
        pytest.param("s3://models/omnix/../other", id="dot dot"),
        pytest.param("s3://models/omnix?token=secret", id="unknown parameter"),
        pytest.param("s3://models/omnix?endpoint=ftp://127.0.0.1:1", id="bad endpoint"),
        pytest.param("s3://models/omnix?region=us-east-1&region=eu-west-1", id="twice"),
    ],
)
def test_a_malformed_s3_model_dir_is_named_before_anything_happens(
    shoppers: Any, tmp_path: Path, model_dir: str
) -> None:
    settings = Settings(model_dir=model_dir, model_cache_dir=str(tmp_path / "cache"))
    with pytest.raises(InvalidArgumentError) as raised:
        train(shoppers.store, settings)
    assert raised.value.field == "OMNIX_MODEL_DIR" and "secret" not in str(raised.value)
    assert shoppers.store.list_models() == [] and not (tmp_path / "cache").exists()


def fail_at(file_name: str) -> Callable[[str], None]:
    def handler(key: str) -> None:
        if key.endswith(f"/{file_name}"):
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1")

    return handler


def test_a_failed_upload_removes_what_it_sent_and_records_nothing(
    shoppers: Any, trainer: Settings, local_s3: LocalS3, bucket: str
) -> None:
    sent: list[str] = []

    def connection_lost_at_item_ids(key: str) -> None:
        sent.append(key)
        fail_at("item_ids.json")(key)

    with (
        on_upload(trainer.model_dir, connection_lost_at_item_ids),
        pytest.raises(UnavailableError, match=r"cannot upload model \S+ to s3://.*EndpointConnectionError"),
    ):
        train(shoppers.store, trainer)
    assert len(sent) > 1  # some files had gone up before the failure
    assert local_s3.keys(bucket) == [] and shoppers.store.list_models() == []
    assert list(Path(trainer.model_cache_dir).iterdir()) == []


def test_a_version_that_could_not_be_recorded_is_removed(
    shoppers: Any, trainer: Settings, local_s3: LocalS3, bucket: str
) -> None:
    destination = ModelDestination(trainer)
    saved = destination.save(build_model(shoppers.store, parameters=PARAMS), {})
    assert len(local_s3.keys(bucket)) == len(ARTIFACT_FILES) and saved.local_path.is_dir()
    destination.discard(saved)  # what train_model does when the store refuses the record
    assert local_s3.keys(bucket) == [] and not saved.local_path.exists()


def test_a_missing_bucket_is_a_failed_precondition(shoppers: Any, local_s3: LocalS3, tmp_path: Path) -> None:
    settings = Settings(model_dir=local_s3.url("no-such-bucket"), model_cache_dir=str(tmp_path / "cache"))
    with pytest.raises(FailedPreconditionError, match=r"to s3://no-such-bucket/omnix/models/\S+: NoSuchBucket"):
        train(shoppers.store, settings)
    assert shoppers.store.list_models() == [] and list((tmp_path / "cache").iterdir()) == []


def test_endpoint_and_region_may_come_from_boto3s_configuration(
    shoppers: Any, local_s3: LocalS3, bucket: str, other_host: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", local_s3.endpoint)
    settings = Settings(model_dir=f"s3://{bucket}/models", model_cache_dir=str(tmp_path / "cache"))
    record = train(shoppers.store, settings)
    assert record.artifact_uri == f"s3://{bucket}/models/{record.version}"
    holder = ModelHolder(shoppers.store, settings=other_host)
    assert holder.reload_if_changed() is True and holder.require().version == record.version


def test_the_cache_directory_is_configurable() -> None:
    assert Settings().model_cache_dir == "./var/model-cache"
    assert Settings.from_env({"OMNIX_MODEL_CACHE_DIR": "/srv/omnix/cache"}).model_cache_dir == "/srv/omnix/cache"


def test_omnix_train_to_s3_then_a_server_answers_from_its_own_copy(
    shop: Any,
    running_server: Any,
    local_s3: LocalS3,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model_dir = local_s3.url(bucket, PREFIX)
    monkeypatch.setenv("OMNIX_MODEL_CACHE_DIR", str(tmp_path / "trainer-cache"))

    def seed_and_train(store: Any) -> None:
        store.upsert_products(list(shop.products.values()))
        type(shop)(store).weekly_milk_shopper("alice")  # the same tiny supermarket, in the server's store
        assert cli.main(["train", "--store", f"sqlite:///{store.path}", "--model-dir", model_dir]) == 0

    server_cache = tmp_path / "server-cache"
    server = running_server(settings=Settings(model_cache_dir=str(server_cache)), prepare=seed_and_train)
    printed = json.loads(capsys.readouterr().out)
    assert printed["artifact_uri"].startswith(f"s3://{bucket}/{PREFIX}/{printed['version']}?endpoint=")

    stub = server.stub(recommendation_pb2_grpc.RecommendationServiceStub)
    response = stub.GetRecommendations(pb.GetRecommendationsRequest(customer_id="alice", limit=3))
    assert len(response.items) == 3 and response.model_version == printed["version"]
    assert [p.name for p in server_cache.iterdir()] == [printed["version"]]
