"""The console's forms refuse cross-site requests: a POST needs the token its page set in a
SameSite=Strict cookie, and must come from the console's own origin when the browser says
where it came from. Refused requests are a 403 page and change nothing; a real browser on
another site cannot activate a model."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from console_support import console_form

from omnix_recs._proto.omnix.v1 import admin_pb2, admin_pb2_grpc
from omnix_recs.gateway.console import CSRF_COOKIE, CSRF_FIELD

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def active_version(stack: Any) -> str:
    admin = stack.stub(admin_pb2_grpc.AdminServiceStub)
    return next(m.version for m in admin.ListModels(admin_pb2.ListModelsRequest()).models if m.active)


def inactive_version(stack: Any) -> str:
    admin = stack.stub(admin_pb2_grpc.AdminServiceStub)
    return next(m.version for m in admin.ListModels(admin_pb2.ListModelsRequest()).models if not m.active)


def test_pages_set_a_strict_http_only_token_cookie(stack: Any) -> None:
    with httpx.Client(base_url=stack.base_url) as fresh:
        page = fresh.get("/console/models")
    cookie = page.headers["set-cookie"].lower()
    assert cookie.startswith(f"{CSRF_COOKIE}=")
    assert "samesite=strict" in cookie and "httponly" in cookie and "path=/console" in cookie
    token = page.cookies[CSRF_COOKIE]
    assert f'name="{CSRF_FIELD}" value="{token}"' in page.text


@pytest.mark.parametrize(
    ("case", "headers", "form_token", "reason"),
    [
        ("no token", {}, None, "security token is missing or stale"),
        ("wrong token", {}, "x" * 43, "security token is missing or stale"),
        ("another origin", {"origin": "http://evil.example"}, "right", "another site (http://evil.example)"),
        ("null origin", {"origin": "null"}, "right", "another site (null)"),
        ("another referer", {"referer": "https://evil.example/page"}, "right", "another site (https://evil.example)"),
    ],
)
def test_a_forged_activation_is_refused_and_changes_nothing(
    stack: Any, case: str, headers: dict[str, str], form_token: str | None, reason: str
) -> None:
    before, other = active_version(stack), inactive_version(stack)
    form = console_form(stack, version=other, force="on")
    if form_token is None:
        del form[CSRF_FIELD]
    elif form_token != "right":
        form[CSRF_FIELD] = form_token
    response = stack.http.post("/console/models/activate", data=form, headers=headers)
    assert response.status_code == 403, case
    assert reason in response.text and "Nothing was changed" in response.text
    assert active_version(stack) == before


def test_a_token_without_its_cookie_is_refused(stack: Any) -> None:
    token = console_form(stack)[CSRF_FIELD]
    with httpx.Client(base_url=stack.base_url) as other_session:  # no cookie: another browser
        response = other_session.post("/console/models/rollback", data={CSRF_FIELD: token})
    assert response.status_code == 403 and "security token" in response.text


@pytest.mark.parametrize("headers", [{}, {"origin": "{own}"}, {"referer": "{own}/console/experiments"}])
def test_the_consoles_own_form_goes_through(stack: Any, headers: dict[str, str]) -> None:
    sent = {key: value.format(own=stack.base_url) for key, value in headers.items()}
    response = stack.http.post("/console/experiments/no-such-experiment/stop", data=console_form(stack), headers=sent)
    assert response.status_code == 303 and "Could+not+stop" in response.headers["location"]


class _AttackerPage(BaseHTTPRequestHandler):
    """Another site: a page whose form posts to the console as soon as it loads."""

    target = ""
    version = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = (
            f'<!doctype html><title>win a prize</title><form id="f" method="post" action="{self.target}">'
            f'<input name="version" value="{self.version}"><input name="force" value="on"></form>'
            "<script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def attacker_site(stack: Any) -> Iterator[str]:
    _AttackerPage.target = f"{stack.base_url}/console/models/activate"
    _AttackerPage.version = inactive_version(stack)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AttackerPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"  # localhost vs 127.0.0.1: another site
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason="chromium and chromium-driver are not installed")
def test_a_cross_site_form_in_a_real_browser_is_refused(browser: Any, stack: Any, attacker_site: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    before = active_version(stack)
    browser.get(stack.base_url + "/console/models")  # the operator has the console open: its cookie is set
    assert browser.get_cookie(CSRF_COOKIE)
    browser.get(attacker_site)
    WebDriverWait(browser, 10).until(lambda driver: "/console/models/activate" in driver.current_url)
    refused = browser.find_element(By.ID, "refused")
    assert "another site" in refused.text
    assert active_version(stack) == before
