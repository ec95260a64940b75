"""Refuse to serve on a reachable address without TLS and authentication, unless told to."""

from __future__ import annotations

import ipaddress
import logging

from omnix_recs.errors import InvalidArgumentError

log = logging.getLogger("omnix.security")

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a host name other than localhost, or "" / "0.0.0.0"-like wildcards
        return False


def check_exposure(host: str, *, tls: bool, auth: bool, insecure: bool) -> None:
    """InvalidArgumentError when `host` is reachable from other machines and the server would
    answer them without TLS or without checking tokens, and `--insecure` was not given."""
    if is_loopback(host) or (tls and auth):
        return
    if insecure:
        absent = " or ".join(name for name, on in (("TLS", tls), ("authentication", auth)) if not on)
        log.warning("serving %s, reachable from other machines, without %s (--insecure)", host, absent)
        return
    missing = [
        name
        for name, on in (
            ("TLS (OMNIX_TLS_CERT_FILE, OMNIX_TLS_KEY_FILE)", tls),
            ("authentication (OMNIX_AUTH_JWT_SECRET or OMNIX_AUTH_JWKS_FILE)", auth),
        )
        if not on
    ]
    raise InvalidArgumentError(
        "--host",
        f"{host} is reachable from other machines but the server has no {' and no '.join(missing)}; "
        "configure them, bind 127.0.0.1, or pass --insecure to serve unprotected anyway",
    )
