"""Certificates, keys and tokens made at test time, and servers that require them.

`pki` writes a CA, a server certificate for localhost/127.0.0.1, and client certificates (one
signed by the CA, one by a stranger CA) as PEM files. `mint` signs JWTs. `secured_server`
starts the real server (tests/conftest.py `running_server`) with token checks on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from security_support import SECRET, Authority, KeyPair, Pki

from omnix_recs.config import Settings

Mint = Callable[..., str]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    directory = tmp_path / "pki"
    directory.mkdir()
    ca, stranger = Authority("OMNIX test CA"), Authority("Stranger CA")
    made = Pki(
        directory=directory,
        ca=ca,
        stranger=stranger,
        server=ca.issue("localhost", server=True),
        client=ca.issue("pos-service", server=False),
        stranger_client=stranger.issue("pos-service", server=False),
    )
    made.ca_file.write_bytes(ca.cert_pem)
    made.cert_file.write_bytes(made.server.cert_pem)
    made.key_file.write_bytes(made.server.key_pem)
    return made


@pytest.fixture
def mint() -> Mint:
    """`mint(sub, role, **claims)`: an HS256 token signed with SECRET, valid for 5 minutes."""

    def make(
        sub: str | None = "c1",
        role: str | None = "shopper",
        *,
        key: Any = SECRET,
        algorithm: str = "HS256",
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        payload: dict[str, Any] = {"exp": int(time.time()) + 300}
        if sub is not None:
            payload["sub"] = sub
        if role is not None:
            payload["role"] = role
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key, algorithm=algorithm, headers=headers)

    return make


@pytest.fixture
def jwks_file(tmp_path: Path) -> tuple[Path, KeyPair, KeyPair]:
    """A JWKS file with one RS256 and one ES256 public key; returns (path, rsa, ec)."""
    rsa_pair = KeyPair("rsa-1", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ec_pair = KeyPair("ec-1", "ES256", ec.generate_private_key(ec.SECP256R1()))
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [rsa_pair.jwk(), ec_pair.jwk()]}))
    return path, rsa_pair, ec_pair


@pytest.fixture
def secured_server(running_server, tmp_path: Path):
    """A running server that requires HS256 tokens and writes an audit log."""

    def start(**overrides: Any):
        settings = Settings(auth_jwt_secret=SECRET, audit_log_file=str(tmp_path / "audit.log"), **overrides)
        return running_server(settings=settings)

    return start
