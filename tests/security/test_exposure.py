"""A server reachable from other machines refuses to start unprotected unless told to."""

from __future__ import annotations

import subprocess
import sys

import pytest

from omnix_recs.errors import InvalidArgumentError
from omnix_recs.security.exposure import check_exposure, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("[::]", False),
        ("", False),
        ("10.0.0.5", False),
        ("omnix.internal", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("host", "tls", "auth", "insecure", "refused"),
    [
        ("127.0.0.1", False, False, False, False),  # the demo: two commands on loopback
        ("0.0.0.0", False, False, False, True),
        ("0.0.0.0", True, False, False, True),
        ("0.0.0.0", False, True, False, True),
        ("0.0.0.0", True, True, False, False),
        ("0.0.0.0", False, False, True, False),  # --insecure: the operator said so
    ],
)
def test_check_exposure(host, tls, auth, insecure, refused):
    if refused:
        with pytest.raises(InvalidArgumentError, match="--insecure"):
            check_exposure(host, tls=tls, auth=auth, insecure=insecure)
    else:
        check_exposure(host, tls=tls, auth=auth, insecure=insecure)


def test_omnix_serve_on_every_interface_without_protection_refuses_to_start(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "omnix_recs.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--store",
            f"sqlite:///{tmp_path / 'omnix.db'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "OMNIX_LOG_LEVEL": "WARNING"},
    )
    assert result.returncode == 2
    assert "0.0.0.0 is reachable from other machines but the server has no TLS" in result.stderr
    assert "pass --insecure" in result.stderr
    assert "Traceback" not in result.stderr
