"""The audit log: who did what to whom, and when, for privacy and admin actions.

One JSON object per line (`OMNIX_AUDIT_LOG_FILE`), appended with one `write` on a file opened
with O_APPEND, so the lines of several worker processes never interleave. Without a file, the
records go to the `omnix.audit` logger. Which RPCs are audited is `Rule.audited` in `roles.py`.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime

import orjson

from omnix_recs.errors import InvalidArgumentError

log = logging.getLogger("omnix.audit")


class AuditLog:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()
        if path:
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                raise InvalidArgumentError("OMNIX_AUDIT_LOG_FILE", f"directory {directory} does not exist")
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def record(
        self,
        *,
        method: str,
        code: str,
        subject: str | None,
        role: str | None,
        customer_id: str | None,
        peer: str,
        request_id: str,
    ) -> None:
        entry = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "who": subject,
            "role": role,
            "action": method,
            "customer_id": customer_id or None,
            "outcome": code,
            "peer": peer,
            "request_id": request_id,
        }
        line = orjson.dumps(entry) + b"\n"
        if self._fd is None:
            log.info(line.decode().rstrip())
            return
        with self._lock:
            os.write(self._fd, line)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_audit_log(path: str) -> list[dict[str, object]]:
    """Every record in an audit log file, oldest first."""
    with open(path, "rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]
