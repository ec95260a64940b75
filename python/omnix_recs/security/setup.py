"""The security pieces a server process needs, built from `Settings`."""

from __future__ import annotations

from dataclasses import dataclass

from omnix_recs.config import Settings
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.security.audit import AuditLog
from omnix_recs.security.auth import Authenticator, AuthSettings
from omnix_recs.security.exposure import check_exposure
from omnix_recs.security.fairness import ClientLimiter
from omnix_recs.security.roles import ROLES
from omnix_recs.security.shared_limits import SharedClientLimiter
from omnix_recs.security.tls import CertificateFiles, TlsSettings


@dataclass(eq=False)
class Security:
    authenticator: Authenticator | None  # None: authentication is off
    certificates: CertificateFiles | None  # None: plaintext
    audit: AuditLog
    limiter: ClientLimiter | None = None  # None: no per-client limits
    stream_idle_timeout_s: float | None = None  # None: client streams may stay silent
    # With Redis: `limiter`'s limits counted across every process (it stays the fallback).
    shared_limiter: SharedClientLimiter | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Security:
        """Everything checked before the server binds: bad files or an exposed, unprotected
        address raise `InvalidArgumentError` naming the variable."""
        certificates = tls_certificates(settings)
        authenticator = authenticator_for(settings)
        check_exposure(
            settings.grpc_host, tls=certificates is not None, auth=authenticator is not None, insecure=settings.insecure
        )
        limited = settings.client_max_inflight or settings.client_rate_per_s
        limiter = ClientLimiter(settings.client_max_inflight, settings.client_rate_per_s) if limited else None
        shared = None
        if limiter is not None and settings.redis_url:
            shared = SharedClientLimiter(
                settings.redis_url,
                limiter,
                timeout_s=settings.redis_timeout_ms / 1000,
                failure_threshold=settings.redis_failure_threshold,
            )
        return cls(
            authenticator=authenticator,
            certificates=certificates,
            audit=AuditLog(settings.audit_log_file),
            limiter=limiter,
            stream_idle_timeout_s=settings.stream_idle_timeout_s or None,
            shared_limiter=shared,
        )

    def close(self) -> None:
        self.audit.close()

    async def aclose(self) -> None:
        """`close`, and the shared limiter's Redis connections (on the loop that used them)."""
        if self.shared_limiter is not None:
            await self.shared_limiter.close()
        self.close()


def tls_certificates(settings: Settings) -> CertificateFiles | None:
    if not settings.tls_cert_file and not settings.tls_key_file:
        if settings.tls_client_ca_file:
            raise InvalidArgumentError(
                "OMNIX_TLS_CLIENT_CA_FILE", "needs OMNIX_TLS_CERT_FILE and OMNIX_TLS_KEY_FILE (mTLS is TLS first)"
            )
        return None
    if not settings.tls_cert_file or not settings.tls_key_file:
        missing = "OMNIX_TLS_KEY_FILE" if settings.tls_cert_file else "OMNIX_TLS_CERT_FILE"
        raise InvalidArgumentError(missing, "is required when the other TLS file is set")
    return CertificateFiles(TlsSettings(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file))


def authenticator_for(settings: Settings) -> Authenticator | None:
    mtls_roles = parse_mtls_roles(settings.auth_mtls_roles)
    if mtls_roles and not settings.tls_client_ca_file:
        raise InvalidArgumentError(
            "OMNIX_AUTH_MTLS_ROLES", "needs OMNIX_TLS_CLIENT_CA_FILE (verified client certificates)"
        )
    if not settings.auth_jwt_secret and not settings.auth_jwks_file and not mtls_roles:
        return None
    return Authenticator(
        AuthSettings(
            jwt_secret=settings.auth_jwt_secret,
            jwks_file=settings.auth_jwks_file,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            mtls_roles=mtls_roles,
        )
    )


def parse_mtls_roles(text: str | None) -> dict[str, str]:
    """`"pos-service=service,ops=admin"`: client-certificate common name -> role."""
    mapping: dict[str, str] = {}
    for entry in (text or "").split(","):
        if not entry.strip():
            continue
        name, sep, role = entry.strip().rpartition("=")
        if not sep or not name or role not in ROLES:
            raise InvalidArgumentError(
                "OMNIX_AUTH_MTLS_ROLES",
                f"expected 'common-name=role' with a role in {sorted(ROLES)}, got {entry[:100]!r}",
            )
        mapping[name] = role
    return mapping
