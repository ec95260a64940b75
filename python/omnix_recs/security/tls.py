"""TLS and mTLS server credentials for gRPC, reloaded from disk without a restart.

`OMNIX_TLS_CERT_FILE` and `OMNIX_TLS_KEY_FILE` (PEM) turn TLS on; `OMNIX_TLS_CLIENT_CA_FILE`
additionally requires every client to present a certificate signed by that CA (mTLS). gRPC
asks `CertificateFiles.fetch` at each new TLS handshake; when a file changed on disk (a renewed
certificate) the new pair is served to new connections, established ones keep theirs. A pair
that does not match (the certificate renewed but the key not yet written) is not taken: the
previous one stays in service until both files agree.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from omnix_recs.errors import InvalidArgumentError

log = logging.getLogger("omnix.tls")


@dataclass(frozen=True, slots=True)
class TlsSettings:
    cert_file: str
    key_file: str
    client_ca_file: str | None = None


@dataclass(frozen=True, slots=True)
class _Loaded:
    stamp: tuple[tuple[int, int], ...]  # (mtime_ns, size) of each file, to notice changes
    config: grpc.ServerCertificateConfiguration


class CertificateFiles:
    """The server's certificate, key and client CA, re-read when they change on disk."""

    def __init__(self, settings: TlsSettings) -> None:
        self.settings = settings
        self._paths = [Path(settings.cert_file), Path(settings.key_file)]
        if settings.client_ca_file:
            self._paths.append(Path(settings.client_ca_file))
        self._lock = threading.Lock()
        loaded = self._load(strict=True)
        if loaded is None:  # strict loading raises instead
            raise InvalidArgumentError("OMNIX_TLS_CERT_FILE", "cannot load the certificate")
        self._loaded: _Loaded = loaded
        self.reloads = 0

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._loaded.config,
            self.fetch,  # type: ignore[arg-type]  # the stubs omit that None means "no change"
            require_client_authentication=self.settings.client_ca_file is not None,
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's callback (on its own threads): a new configuration, or None for no change.
        Never raises: an exception here would fail the handshake."""
        try:
            stamp = self._stamp()
            if stamp == self._loaded.stamp:
                return None
            with self._lock:
                loaded = self._load(strict=False)
                if loaded is None:
                    return None
                self._loaded = loaded
                self.reloads += 1
            log.info("TLS: loaded the renewed certificate from %s", self.settings.cert_file)
            return loaded.config
        except Exception:  # noqa: BLE001 - keep serving the previous certificate
            log.warning("TLS: cannot check the certificate files; keeping the current certificate", exc_info=True)
            return None

    def _stamp(self) -> tuple[tuple[int, int], ...]:
        stamps = []
        for path in self._paths:
            info = os.stat(path)
            stamps.append((info.st_mtime_ns, info.st_size))
        return tuple(stamps)

    def _load(self, *, strict: bool) -> _Loaded | None:
        """Read and check the files; a problem raises at start-up (`strict`) and is logged
        (keeping the previous certificate) on a reload."""
        try:
            stamp = self._stamp()
            cert_pem = Path(self.settings.cert_file).read_bytes()
            key_pem = Path(self.settings.key_file).read_bytes()
            ca_pem = Path(self.settings.client_ca_file).read_bytes() if self.settings.client_ca_file else None
            _check_pair(cert_pem, key_pem, self.settings)
            if ca_pem is not None:
                _parse_certificates("OMNIX_TLS_CLIENT_CA_FILE", self.settings.client_ca_file or "", ca_pem)
        except (OSError, InvalidArgumentError) as exc:
            if strict:
                if isinstance(exc, OSError):
                    raise InvalidArgumentError(
                        "OMNIX_TLS_CERT_FILE", f"cannot read {exc.filename}: {exc.strerror}"
                    ) from None
                raise
            log.warning("TLS: not reloading the certificate: %s", exc)
            return None
        config = grpc.ssl_server_certificate_configuration([(key_pem, cert_pem)], root_certificates=ca_pem)
        return _Loaded(stamp=stamp, config=config)


def _parse_certificates(variable: str, path: str, pem: bytes) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise InvalidArgumentError(variable, f"{path} holds no PEM certificate") from None
    return certificates


def _check_pair(
    cert_pem: bytes,
    key_pem: bytes,
    settings: TlsSettings,
    variables: tuple[str, str] = ("OMNIX_TLS_CERT_FILE", "OMNIX_TLS_KEY_FILE"),
) -> None:
    """The key must be the private half of the first certificate's public key."""
    cert_variable, key_variable = variables
    certificate = _parse_certificates(cert_variable, settings.cert_file, cert_pem)[0]
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise InvalidArgumentError(key_variable, f"{settings.key_file} holds no unencrypted PEM private key") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if key.public_key().public_bytes(encoding, public) != certificate.public_key().public_bytes(encoding, public):
        raise InvalidArgumentError(
            key_variable, f"{settings.key_file} is not the key of the certificate in {settings.cert_file}"
        )


def peer_common_name(auth_context: Mapping[str, Iterable[bytes]]) -> str | None:
    """The verified client certificate's common name (mTLS), or None."""
    for name in auth_context.get("x509_common_name") or ():
        return name.decode("utf-8", "replace")
    return None


@dataclass(frozen=True, slots=True)
class ClientTlsSettings:
    """How a client of the gRPC server (the REST gateway) opens a TLS channel: the CA it
    trusts for the server's certificate, the name it expects in that certificate (None: the
    target's host), and for mTLS its own certificate and key."""

    ca_file: str
    server_name: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True, slots=True)
class ClientChannelTls:
    credentials: grpc.ChannelCredentials
    options: tuple[tuple[str, str], ...]  # the server-name override, when there is one


def channel_tls(settings: ClientTlsSettings) -> ClientChannelTls:
    """Channel credentials from PEM files, checked now so a wrong file fails at start-up
    naming its variable rather than at the first call as an opaque handshake error."""
    try:
        ca_pem = Path(settings.ca_file).read_bytes()
    except OSError as exc:
        raise InvalidArgumentError("OMNIX_TLS_CA_FILE", f"cannot read {exc.filename}: {exc.strerror}") from None
    _parse_certificates("OMNIX_TLS_CA_FILE", settings.ca_file, ca_pem)
    cert_pem = key_pem = None
    if settings.cert_file or settings.key_file:
        if not settings.cert_file or not settings.key_file:
            missing = "OMNIX_GATEWAY_TLS_KEY_FILE" if settings.cert_file else "OMNIX_GATEWAY_TLS_CERT_FILE"
            raise InvalidArgumentError(missing, "is required when the other client-certificate file is set")
        try:
            cert_pem = Path(settings.cert_file).read_bytes()
            key_pem = Path(settings.key_file).read_bytes()
        except OSError as exc:
            raise InvalidArgumentError(
                "OMNIX_GATEWAY_TLS_CERT_FILE", f"cannot read {exc.filename}: {exc.strerror}"
            ) from None
        _check_pair(
            cert_pem,
            key_pem,
            TlsSettings(settings.cert_file, settings.key_file),
            ("OMNIX_GATEWAY_TLS_CERT_FILE", "OMNIX_GATEWAY_TLS_KEY_FILE"),
        )
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem
    )
    options = (("grpc.ssl_target_name_override", settings.server_name),) if settings.server_name else ()
    return ClientChannelTls(credentials, options)


def certificate_name(cert_file: str) -> str | None:
    """A name the certificate in `cert_file` is valid for: its first DNS name, else its
    common name. The in-process gateway dials 127.0.0.1 and expects this name instead."""
    try:
        certificate = _parse_certificates("OMNIX_TLS_CERT_FILE", cert_file, Path(cert_file).read_bytes())[0]
    except OSError:
        return None
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = names.get_values_for_type(x509.DNSName)
        if dns:
            return dns[0]
    except x509.ExtensionNotFound:
        pass
    for attribute in certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME):
        return str(attribute.value)
    return None
