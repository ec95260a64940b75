"""What a console form sends besides its fields: the CSRF token the pages set as a cookie."""

from __future__ import annotations

from typing import Any

from omnix_recs.gateway.console import CSRF_COOKIE, CSRF_FIELD


def console_form(stack: Any, **fields: str) -> dict[str, str]:
    """`fields` plus the token, read from a console page the way a browser gets it."""
    if CSRF_COOKIE not in stack.http.cookies:
        stack.http.get("/console/customers").raise_for_status()
    return {**fields, CSRF_FIELD: stack.http.cookies[CSRF_COOKIE]}
