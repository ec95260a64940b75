"""The container image recipe and the Kubernetes manifests (Dockerfile, deploy/kubernetes/).

Neither Docker nor a cluster runs here, so the manifests are checked the way an API server
would take them (Kubernetes' own OpenAPI schemas, strict: an unknown or misspelt field fails)
and against what the service does: probe the port it serves, drain within the pod's grace
period, read every setting the ConfigMap gives it.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from omnix_recs.config import Settings

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes the manifests promise to work on (gRPC probes are GA from 1.27), and the newest schema known.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document is not None:
                found.append((path.name, document))
    return found


def resource(kind: str, name: str) -> dict[str, Any]:
    matches = [d for _, d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def serving_container() -> dict[str, Any]:
    containers = resource("Deployment", "omnix")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "omnix")


def config_data() -> dict[str, str]:
    data: dict[str, str] = resource("ConfigMap", "omnix-config")["data"]
    return data


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("file", "document"), manifests(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_every_manifest_is_valid_kubernetes(file: str, document: dict[str, Any], version: str) -> None:
    if document["kind"] == "Kustomization":  # kustomize's own file, not an API object
        return
    kubernetes_validate.validate(document, version, strict=True)


def test_the_validator_refuses_a_misspelt_field() -> None:
    broken = copy.deepcopy(resource("Deployment", "omnix"))
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    with pytest.raises(kubernetes_validate.ValidationError, match="terminationGracePeriod"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_the_kustomization_applies_every_manifest() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text(encoding="utf-8"))
    files = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    images = {image["name"] for image in kustomization["images"]}
    used = {
        c["image"]
        for _, d in manifests()
        if d["kind"] in ("Deployment", "Job", "CronJob")
        for c in _pod_spec(d)["containers"]
        if not c["image"].startswith("redis:")
    }
    assert used == images == {"omnix-recs"}


def _pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    spec = document["spec"]
    if document["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod: dict[str, Any] = spec["template"]["spec"]
    return pod


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe", "livenessProbe"])
def test_probes_use_grpc_health_on_the_serving_port(probe: str) -> None:
    container = serving_container()
    grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    assert container[probe]["grpc"] == {"port": grpc_port}  # service "" = the whole server's health
    assert grpc_port == int(config_data()["OMNIX_GRPC_PORT"])


def test_the_pod_drains_within_its_grace_period() -> None:
    pod = resource("Deployment", "omnix")["spec"]["template"]["spec"]
    pre_stop = serving_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain_s = Settings.from_env(config_data()).shutdown_grace_s
    assert "OMNIX_SHUTDOWN_GRACE_S" in config_data()  # the pod's drain is set, not a default
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + drain_s


def test_rolling_updates_never_drop_below_the_replica_count() -> None:
    strategy = resource("Deployment", "omnix")["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


def test_the_autoscaler_scales_the_deployment_on_cpu() -> None:
    hpa = resource("HorizontalPodAutoscaler", "omnix")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "omnix"}
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]
    assert "cpu" in serving_container()["resources"]["requests"]  # utilisation is a share of it


@pytest.mark.parametrize(("kind", "name"), [("Service", "omnix"), ("PodDisruptionBudget", "omnix")])
def test_selectors_match_the_serving_pods(kind: str, name: str) -> None:
    labels = resource("Deployment", "omnix")["spec"]["template"]["metadata"]["labels"]
    spec = resource(kind, name)["spec"]
    selector = spec["selector"].get("matchLabels", spec["selector"])
    assert selector.items() <= labels.items()


def test_the_service_is_headless_so_clients_balance_over_every_pod() -> None:
    assert resource("Service", "omnix")["spec"]["clusterIP"] == "None"


def test_the_config_map_is_settings_the_server_reads() -> None:
    data = config_data()
    settings = Settings.from_env(data)
    assert settings.store_url.startswith("dynamodb://")
    assert settings.redis_url == data["OMNIX_REDIS_URL"]
    assert settings.redis_url.startswith("redis://omnix-redis:")  # the Service in redis.yaml
    assert settings.model_dir.startswith("s3://")
    assert settings.metrics_port == 9100
    assert settings.retrain_every_s == 0  # the CronJob trains, not every serving pod
    assert resource("Service", "omnix-redis")["spec"]["ports"][0]["port"] == 6379


def test_the_jwt_secret_comes_from_a_secret_not_the_config_map() -> None:
    assert not any("SECRET" in key for key in config_data())
    env = {e["name"]: e for e in serving_container()["env"]}
    assert env["OMNIX_AUTH_JWT_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "omnix-auth"


def test_the_dockerfile_builds_the_wheel_and_runs_it_slim() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", dockerfile, flags=re.MULTILINE)
    assert [name for _, name in stages] == ["rust", "build", "runtime"]
    assert "maturin build --release --locked" in dockerfile
    assert stages[-1][0].endswith("-slim-bookworm")
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert "COPY --from=build /dist/" in runtime and "cargo" not in runtime  # no toolchain at run time
    assert re.search(r"^USER 10001$", runtime, flags=re.MULTILINE)
    assert re.search(r"^EXPOSE 50051 9100$", runtime, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["omnix"]' in runtime
    python = re.search(r"^ARG PYTHON_VERSION=(\d+)\.(\d+)$", dockerfile, flags=re.MULTILINE)
    assert python is not None and (int(python[1]), int(python[2])) >= (3, 11)  # pyproject's requires-python


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".git", ".venv", "target", "var"} <= ignored
