"""A local HTTP server that answers like Bedrock's Converse endpoint, for tests.

It listens on 127.0.0.1 (a free port), accepts `POST /model/{modelId}/converse`, records every
request (path, decoded model id, headers, JSON body) and answers from a script of `Reply`s (one
per request, in order; after the script, `default`). The default reply is a valid tool call
with `VALID_INSIGHTS`, shaped like Bedrock's response: output.message.content[{toolUse}],
stopReason "tool_use", usage and metrics.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from omnix_recs.insights.schema import TOOL_NAME

# A valid insights document, recognisably not the local analyst's.
VALID_INSIGHTS: dict[str, Any] = {
    "summary": "Written by the fake Bedrock: a steady weekly shopper with a family to feed.",
    "highlights": ["Shops weekly."],
    "household": {"size": 3, "confidence": 0.6, "evidence": ["buys family volumes"]},
    "budget": {"tier": "mid", "price_sensitivity": "medium", "confidence": 0.5, "evidence": ["typical prices"]},
    "lifestyle": [],
    "lifecycle": {"segment": "regular", "confidence": 0.7, "evidence": ["shops every week"]},
    "needs": [],
    "actions": [{"action": "Remind them about milk", "reason": "due on the next trip"}],
}


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None  # JSON-serialisable; None = a tool call with `tool_input`
    tool_input: Any = field(default_factory=lambda: VALID_INSIGHTS)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait this long before answering


def tool_call(tool_input: Any) -> dict[str, Any]:
    return {
        "output": {
            "message": {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "tooluse_fake1", "name": TOOL_NAME, "input": tool_input}}],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 812, "outputTokens": 240, "totalTokens": 1052},
        "metrics": {"latencyMs": 420},
    }


def error(status: int, code: str, message: str = "fake failure") -> Reply:
    """An AWS JSON error: the code in `x-amzn-errortype`, as Bedrock sends it."""
    return Reply(
        status=status,
        body={"message": message},
        headers={"x-amzn-errortype": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
    )


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    model_id: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeBedrock:
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.script: list[Reply] = []
        self.default = Reply()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                parts = self.path.split("/")
                model_id = urllib.parse.unquote(parts[2]) if len(parts) == 4 and parts[3] == "converse" else ""
                reply = fake._record(RecordedRequest(self.path, model_id, dict(self.headers), body))
                if not model_id:
                    reply = error(404, "ResourceNotFoundException", f"no route {self.path}")
                time.sleep(reply.delay_s)
                payload = json.dumps(reply.body if reply.body is not None else tool_call(reply.tool_input)).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting, as it should

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-bedrock", daemon=True
        )

    def _record(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self.script.pop(0) if self.script else self.default

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeBedrock:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def isolate_aws_credentials(monkeypatch: Any, tmp_path: Path) -> None:
    """Credentials for signing requests to the fake server; nothing from this machine's AWS setup."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFORTESTS0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-for-tests")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
