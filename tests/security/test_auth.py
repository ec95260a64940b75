"""Bearer tokens: what verifies, what does not, and what the caller is told."""

from __future__ import annotations

import hashlib
import hmac
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from security_support import AUDIENCE, ISSUER, SECRET, KeyPair

from omnix_recs.errors import InvalidArgumentError
from omnix_recs.security.auth import Authenticator, AuthSettings, Principal, UnauthenticatedError
from omnix_recs.security.setup import parse_mtls_roles

HS = Authenticator(AuthSettings(jwt_secret=SECRET))


def test_a_valid_token_names_its_subject_and_role(mint):
    assert HS.verify_token(mint("c42", "shopper")) == Principal("c42", "shopper", "jwt")


def test_a_verified_token_is_remembered_until_it_expires(mint):
    authenticator = Authenticator(AuthSettings(jwt_secret=SECRET))
    token = mint("svc", "service")
    first = authenticator.verify_token(token)
    assert authenticator.verify_token(token) is first


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda mint: mint(exp=int(time.time()) - 120), "expired"),
        (lambda mint: mint(exp=None), 'Token is missing the "exp" claim'),
        (lambda mint: mint(sub=None), 'Token is missing the "sub" claim'),
        (lambda mint: mint(role=None), "'role' claim must be one of admin, analyst, service, shopper"),
        (lambda mint: mint(role="root"), "'role' claim must be one of"),
        (lambda mint: mint(key="another-secret-of-the-same-length-0123456789abcd"), "Signature verification failed"),
        (lambda mint: mint(algorithm="HS512"), "algorithm 'HS512' is not accepted (accepted: HS256)"),
        (
            lambda mint: jwt.encode({"sub": "c1", "role": "admin", "exp": time.time() + 60}, None, algorithm="none"),
            "algorithm 'none' is not accepted",
        ),
        (lambda mint: "not-a-jwt", "is not a JWT"),
        (lambda mint: "x" * 10_000, "longer than 8192 characters"),
    ],
)
def test_tokens_that_do_not_verify_say_why(mint, make, message):
    with pytest.raises(UnauthenticatedError, match=message.replace("(", r"\(").replace(")", r"\)")):
        HS.verify_token(make(mint))


def test_issuer_and_audience_are_checked_when_configured(mint):
    strict = Authenticator(AuthSettings(jwt_secret=SECRET, issuer=ISSUER, audience=AUDIENCE))
    assert strict.verify_token(mint(iss=ISSUER, aud=AUDIENCE)).subject == "c1"
    for claims, reason in (
        ({"iss": "https://evil", "aud": AUDIENCE}, "issuer"),
        ({"iss": ISSUER, "aud": "other"}, "audience"),
        ({"aud": AUDIENCE}, "iss"),
    ):
        with pytest.raises(UnauthenticatedError, match=f"(?i){reason}"):
            strict.verify_token(mint(**claims))


@pytest.mark.parametrize("which", ["rsa", "ec"])
def test_public_key_tokens_verify_with_the_jwks_key_of_their_kid(mint, jwks_file, which):
    path, rsa_pair, ec_pair = jwks_file
    pair: KeyPair = rsa_pair if which == "rsa" else ec_pair
    authenticator = Authenticator(AuthSettings(jwks_file=str(path)))
    token = mint("ops", "admin", key=pair.private, algorithm=pair.algorithm, headers={"kid": pair.kid})
    assert authenticator.verify_token(token) == Principal("ops", "admin", "jwt")


def test_jwks_refuses_unknown_kids_mismatched_algorithms_and_key_confusion(mint, jwks_file):
    path, rsa_pair, ec_pair = jwks_file
    authenticator = Authenticator(AuthSettings(jwks_file=str(path)))
    with pytest.raises(UnauthenticatedError, match="key id 'nope' is not in the JWKS file"):
        authenticator.verify_token(mint(key=rsa_pair.private, algorithm="RS256", headers={"kid": "nope"}))
    with pytest.raises(UnauthenticatedError, match="key is for ES256, not RS256"):
        authenticator.verify_token(mint(key=rsa_pair.private, algorithm="RS256", headers={"kid": ec_pair.kid}))
    # The classic confusion: an HS256 token "signed" with the RSA public key (PEM) as its
    # secret. Without a configured secret, HS256 is simply not an accepted algorithm.
    public_pem = rsa_pair.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT","kid":"rsa-1"}')
    payload = jwt.utils.base64url_encode(b'{"sub":"c1","role":"admin","exp":%d}' % (time.time() + 60))
    signature = hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    forged = b".".join([header, payload, jwt.utils.base64url_encode(signature)]).decode()
    with pytest.raises(UnauthenticatedError, match="algorithm 'HS256' is not accepted"):
        authenticator.verify_token(forged)


def test_a_short_hmac_secret_stops_start_up():
    with pytest.raises(InvalidArgumentError, match="at least 32 bytes"):
        Authenticator(AuthSettings(jwt_secret="short"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read a JWKS"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}]}', "uses HS256; accepted: RS256, ES256"),
    ],
)
def test_a_bad_jwks_file_stops_start_up(tmp_path, content, message):
    path = tmp_path / "jwks.json"
    path.write_text(content)
    with pytest.raises(InvalidArgumentError, match=message):
        Authenticator(AuthSettings(jwks_file=str(path)))


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ((), "requires a bearer token"),
        ((("authorization", "Basic dXNlcjpwYXNz"),), "must be 'Bearer <JWT>'"),
        ((("authorization", "Bearer "),), "must be 'Bearer <JWT>'"),
    ],
)
def test_missing_or_malformed_authorization_metadata(metadata, message):
    with pytest.raises(UnauthenticatedError, match=message):
        HS.principal_for(metadata, None)


def test_mtls_identities_map_to_roles_only_when_no_token_is_sent(mint):
    authenticator = Authenticator(AuthSettings(jwt_secret=SECRET, mtls_roles={"pos-service": "service"}))
    assert authenticator.principal_for((), "pos-service") == Principal("pos-service", "service", "mtls")
    with pytest.raises(UnauthenticatedError):
        authenticator.principal_for((), "unknown-client")
    token = mint("c9", "shopper")
    assert authenticator.principal_for((("authorization", f"Bearer {token}"),), "pos-service").role == "shopper"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("pos=service, ops=admin", {"pos": "service", "ops": "admin"}),
        ("cn=with=equals=analyst", {"cn=with=equals": "analyst"}),
    ],
)
def test_parse_mtls_roles(text, expected):
    assert parse_mtls_roles(text) == expected


@pytest.mark.parametrize("text", ["pos", "pos=root", "=admin"])
def test_parse_mtls_roles_refuses_bad_entries(text):
    with pytest.raises(InvalidArgumentError, match="OMNIX_AUTH_MTLS_ROLES"):
        parse_mtls_roles(text)
