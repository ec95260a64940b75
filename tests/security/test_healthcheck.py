"""`omnix healthcheck`: the exec probe for servers that serve TLS (Kubernetes' gRPC probes
cannot), run with the server's own settings, over real sockets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from omnix_recs import cli
from omnix_recs.config import Settings

sys.path.insert(0, str(Path(__file__).parents[1] / "scale"))
from scale_support import free_port  # noqa: E402


@pytest.fixture
def env_of(monkeypatch):
    """Give the check the server's environment, as in the server's own container."""

    def apply(settings: Settings, port: int) -> None:
        monkeypatch.setenv("OMNIX_GRPC_PORT", str(port))
        for field, variable in (
            ("tls_cert_file", "OMNIX_TLS_CERT_FILE"),
            ("tls_key_file", "OMNIX_TLS_KEY_FILE"),
            ("tls_client_ca_file", "OMNIX_TLS_CLIENT_CA_FILE"),
        ):
            value = getattr(settings, field)
            if value:
                monkeypatch.setenv(variable, value)
            else:
                monkeypatch.delenv(variable, raising=False)

    return apply


@pytest.mark.parametrize("mode", ["plaintext", "tls", "mtls"])
def test_the_check_speaks_what_the_server_serves(running_server, pki, env_of, capsys, mode):
    settings = Settings(**pki.tls_settings(mtls=mode == "mtls")) if mode != "plaintext" else Settings()
    server = running_server(settings=settings)
    env_of(settings, server.port)
    assert cli.main(["healthcheck"]) == 0
    assert capsys.readouterr().out == f"127.0.0.1:{server.port}: SERVING\n"
    assert cli.main(["healthcheck", "--service", "omnix.v1.CustomerService"]) == 0


def test_a_plaintext_check_of_a_tls_server_fails(running_server, pki, env_of, capsys):
    settings = Settings(**pki.tls_settings())
    server = running_server(settings=settings)
    env_of(settings, server.port)
    assert cli.main(["healthcheck", "--plaintext", "--timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"omnix healthcheck: 127.0.0.1:{server.port}: UNAVAILABLE") and err.count("\n") == 1


def test_nothing_listening_or_an_unknown_service_fails(running_server, env_of, capsys):
    server = running_server()
    env_of(Settings(), server.port)
    assert cli.main(["healthcheck", "--service", "omnix.v1.NoSuchService"]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
    assert cli.main(["healthcheck", "--target", f"127.0.0.1:{free_port()}", "--timeout", "1"]) == 1
    assert "omnix healthcheck:" in capsys.readouterr().err


def test_the_tls_deployment_probes_with_the_check() -> None:
    """deploy/kubernetes-tls patches the deployment's probes to exec the check: the patched
    Deployment (merged here as kustomize would) is valid Kubernetes, strictly."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    root = Path(__file__).resolve().parents[2] / "deploy"
    base = next(d for d in yaml.safe_load_all((root / "kubernetes" / "deployment.yaml").read_text()) if d)
    patch = yaml.safe_load((root / "kubernetes-tls" / "tls-probes.yaml").read_text())
    assert yaml.safe_load((root / "kubernetes-tls" / "kustomization.yaml").read_text())["resources"] == [
        "../kubernetes"
    ]
    container = base["spec"]["template"]["spec"]["containers"][0]
    patched = patch["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert patched[probe]["grpc"] is None  # strategic merge: removes the base's gRPC handler
        del container[probe]["grpc"]
        container[probe].update({k: v for k, v in patched[probe].items() if v is not None})
        assert container[probe]["exec"]["command"][:2] == ["omnix", "healthcheck"]
    container["env"] += patched["env"]
    container["volumeMounts"] += patched["volumeMounts"]
    base["spec"]["template"]["spec"]["volumes"] += patch["spec"]["template"]["spec"]["volumes"]
    kubernetes_validate.validate(base, kubernetes_validate.latest_version(), strict=True)
    settings = Settings.from_env({e["name"]: e["value"] for e in container["env"] if "value" in e})
    assert settings.tls_cert_file == "/etc/omnix/tls/tls.crt" and not settings.insecure
