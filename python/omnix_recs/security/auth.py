"""Bearer-token authentication and the role check, for the one server interceptor.

Tokens are JWTs (PyJWT): HS256 with a shared secret (`OMNIX_AUTH_JWT_SECRET`), or RS256/ES256
with public keys from a JWKS file (`OMNIX_AUTH_JWKS_FILE`, the key picked by the token's
`kid`). The algorithm is fixed by the key that verifies it, never taken on the token's word, so
an RS256 public key can never be used as an HS256 secret. `exp`, `sub` and `role` are required;
`iss` and `aud` are checked when configured. Verified tokens are remembered until they expire,
so a client that reuses its token pays for one signature check, not one per call.

With neither a secret nor a JWKS file, authentication is off (`Authenticator.from_settings`
answers None): the demo on loopback needs no token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from omnix_recs.errors import InvalidArgumentError, OmnixError
from omnix_recs.security.roles import ROLES, SHOPPER, ShopperScope, rule_for

AUTHORIZATION_KEY = "authorization"
HMAC_ALGORITHMS = ("HS256",)
PUBLIC_KEY_ALGORITHMS = ("RS256", "ES256")
# Clock difference between the token issuer and this server we tolerate on exp/nbf/iat.
LEEWAY_S = 30
# Verified tokens remembered (each until its exp); the table is emptied when full.
MAX_REMEMBERED_TOKENS = 10_000
# Tokens longer than this are refused before any parsing (a JWT is a few hundred bytes).
MAX_TOKEN_LENGTH = 8_192
MIN_SECRET_BYTES = 32
# Characters of a caller's value quoted back in an error message.
MAX_QUOTED = 100


class UnauthenticatedError(OmnixError):
    """No credentials, or credentials that do not verify (gRPC UNAUTHENTICATED)."""


class PermissionDeniedError(OmnixError):
    """Verified credentials whose role may not make this call (gRPC PERMISSION_DENIED)."""


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    role: str
    source: str  # "jwt" or "mtls"


def quoted(value: str, limit: int = MAX_QUOTED) -> str:
    """`repr(value)`, cut to `limit` characters of the value: error messages travel in trailers."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


@dataclass(frozen=True, slots=True)
class AuthSettings:
    jwt_secret: str | None = None
    jwks_file: str | None = None
    issuer: str | None = None
    audience: str | None = None
    # Verified client-certificate common name -> role, for callers that authenticate by mTLS.
    mtls_roles: Mapping[str, str] | None = None


class Authenticator:
    """Verifies bearer tokens (and mTLS identities) and checks them against `roles.RULES`."""

    def __init__(self, settings: AuthSettings) -> None:
        if not settings.jwt_secret and not settings.jwks_file and not settings.mtls_roles:
            raise InvalidArgumentError("OMNIX_AUTH_JWT_SECRET", "set a secret, a JWKS file or mTLS roles")
        if settings.jwt_secret and len(settings.jwt_secret.encode()) < MIN_SECRET_BYTES:
            # RFC 7518 3.2: an HS256 key at least as long as the hash; shorter ones are guessable.
            raise InvalidArgumentError("OMNIX_AUTH_JWT_SECRET", f"must be at least {MIN_SECRET_BYTES} bytes long")
        self.settings = settings
        self._secret = settings.jwt_secret or None
        self._public_keys: dict[str, jwt.PyJWK] = _load_jwks(settings.jwks_file) if settings.jwks_file else {}
        self._mtls_roles = dict(settings.mtls_roles or {})
        for name, role in self._mtls_roles.items():
            if role not in ROLES:
                raise InvalidArgumentError("OMNIX_AUTH_MTLS_ROLES", f"{name}: unknown role {quoted(role)}")
        self._remembered: dict[str, tuple[Principal, float]] = {}

    def verify_token(self, token: str) -> Principal:
        """The principal a bearer token names; UnauthenticatedError when it does not verify."""
        now = time.time()
        remembered = self._remembered.get(token)
        if remembered is not None and now < remembered[1] + LEEWAY_S:
            return remembered[0]
        if len(token) > MAX_TOKEN_LENGTH:
            raise UnauthenticatedError(f"the bearer token is longer than {MAX_TOKEN_LENGTH} characters")
        key, algorithms = self._key_for(token)
        options: dict[str, Any] = {"require": ["exp", "sub"], "verify_aud": self.settings.audience is not None}
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                options=options,  # type: ignore[arg-type]
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=LEEWAY_S,
            )
        except jwt.ExpiredSignatureError:
            raise UnauthenticatedError("the bearer token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise UnauthenticatedError(f"the bearer token is not valid: {_cut(str(exc))}") from None
        principal = _principal(claims)
        if len(self._remembered) >= MAX_REMEMBERED_TOKENS:
            self._remembered.clear()
        self._remembered[token] = (principal, float(claims["exp"]))
        return principal

    def _key_for(self, token: str) -> tuple[Any, list[str]]:
        """The key that may verify this token and the one algorithm it verifies with."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise UnauthenticatedError("the bearer token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm in HMAC_ALGORITHMS and self._secret:
            return self._secret, [algorithm]
        if algorithm in PUBLIC_KEY_ALGORITHMS and self._public_keys:
            kid = header.get("kid")
            key = self._public_keys.get(kid) if isinstance(kid, str) else None
            if key is None and kid is None and len(self._public_keys) == 1:
                key = next(iter(self._public_keys.values()))
            if key is None:
                raise UnauthenticatedError(f"the bearer token's key id {quoted(str(kid))} is not in the JWKS file")
            if key.algorithm_name != algorithm:
                raise UnauthenticatedError(f"the bearer token's key is for {key.algorithm_name}, not {algorithm}")
            return key, [algorithm]
        accepted = [*(HMAC_ALGORITHMS if self._secret else ()), *(PUBLIC_KEY_ALGORITHMS if self._public_keys else ())]
        raise UnauthenticatedError(
            f"the bearer token's algorithm {quoted(str(algorithm))} is not accepted (accepted: {', '.join(accepted)})"
        )

    def principal_for(self, metadata: Iterable[tuple[str, str | bytes]], peer_identity: str | None) -> Principal:
        """Who is calling: the bearer token if one is sent, else a mapped mTLS identity."""
        for key, value in metadata:
            if key == AUTHORIZATION_KEY:
                text = value.decode("latin-1") if isinstance(value, bytes) else value
                scheme, _, token = text.strip().partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise UnauthenticatedError("the authorization metadata must be 'Bearer <JWT>'")
                return self.verify_token(token.strip())
        if peer_identity is not None and peer_identity in self._mtls_roles:
            return Principal(subject=peer_identity, role=self._mtls_roles[peer_identity], source="mtls")
        raise UnauthenticatedError("this server requires a bearer token: send metadata 'authorization: Bearer <JWT>'")

    def authorize(self, method: str, principal: Principal, request: object) -> None:
        """PermissionDeniedError unless `principal` may call `method` with `request` (the
        request message, or None for client-streaming calls)."""
        rule = rule_for(method)
        if rule is None:
            raise PermissionDeniedError(f"{method} has no access rule yet; nobody may call it")
        if not rule.allows(principal.role):
            raise PermissionDeniedError(
                f"role {quoted(principal.role)} may not call {_rpc_name(method)} "
                f"(allowed: {', '.join(rule.allowed_roles())})"
            )
        if principal.role != SHOPPER:
            return
        customer_id = getattr(request, "customer_id", None)
        if not isinstance(customer_id, str):  # no customer in the request (or a stream of them)
            if rule.shopper is ShopperScope.OWN:
                raise PermissionDeniedError(f"a shopper may not call {_rpc_name(method)}")
            return
        if customer_id == principal.subject or (not customer_id and rule.shopper is ShopperScope.OWN_OR_EMPTY):
            return
        raise PermissionDeniedError(
            f"a shopper may act only on their own customer: customer_id {quoted(customer_id)} "
            "is not the token's subject"
        )

    @property
    def uses_client_certificates(self) -> bool:
        """Whether verified client-certificate names map to roles (mTLS identities)."""
        return bool(self._mtls_roles)


def _principal(claims: Mapping[str, Any]) -> Principal:
    subject, role = claims.get("sub"), claims.get("role")
    if not isinstance(subject, str) or not subject:
        raise UnauthenticatedError("the bearer token's 'sub' claim must be a non-empty string")
    if role not in ROLES:
        raise UnauthenticatedError(
            f"the bearer token's 'role' claim must be one of {', '.join(sorted(ROLES))}, got {quoted(str(role))}"
        )
    return Principal(subject=subject, role=str(role), source="jwt")


def _load_jwks(path: str) -> dict[str, jwt.PyJWK]:
    """Public keys by key id; only the algorithms we accept, and each key must say which."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        key_set = jwt.PyJWKSet.from_dict(data)
    except (OSError, ValueError, jwt.PyJWKSetError, jwt.PyJWKError) as exc:
        raise InvalidArgumentError(
            "OMNIX_AUTH_JWKS_FILE", f"cannot read a JWKS from {path}: {_cut(str(exc))}"
        ) from None
    keys: dict[str, jwt.PyJWK] = {}
    for index, key in enumerate(key_set.keys):
        if key.algorithm_name not in PUBLIC_KEY_ALGORITHMS:
            raise InvalidArgumentError(
                "OMNIX_AUTH_JWKS_FILE",
                f"keys[{index}] uses {key.algorithm_name}; accepted: {', '.join(PUBLIC_KEY_ALGORITHMS)} "
                "(set 'alg' on every key)",
            )
        keys[key.key_id or f"#{index}"] = key
    return keys


def _rpc_name(method: str) -> str:
    return method.rsplit("/", 1)[-1]


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
