"""HTTP executors against a local http.server running in a thread."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from ants.executors.base import ExecutionContext, executor_for
from ants.executors.http import HttpExecutor
from ants.protocol import TaskRequest


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _handle(self) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if url.path.startswith("/slow"):
            time.sleep(3)
        status = int(url.path.split("/")[2]) if url.path.startswith("/status/") else 200
        payload = json.dumps(
            {
                "method": self.command,
                "path": url.path,
                "query": parse_qs(url.query),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            },
            indent=1,
        ).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up (cancel/timeout tests)

    do_GET = do_POST = do_PUT = do_DELETE = _handle


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    th = threading.Thread(target=httpd.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def execute(tmp_path: Path, method: str, spec: dict, cancel_after: float | None = None, **kw):
    lines: list[tuple[str, str]] = []
    cancel = threading.Event()
    if cancel_after is not None:
        threading.Timer(cancel_after, cancel.set).start()
    ctx = ExecutionContext(workdir=tmp_path, log=lambda s, line: lines.append((s, line)), cancel_event=cancel)
    req = TaskRequest(task_execution_id=1, job_request_id=1, task_type="h", method=method, spec=spec, **kw)
    result = executor_for(method).execute(req, ctx)
    return result, lines


def echoed(result) -> dict:
    return json.loads(result.task_context["response"])


def test_registry_maps_every_http_method() -> None:
    for m in (
        "HTTP_GET",
        "HTTP_POST_FORM",
        "HTTP_POST_JSON",
        "HTTP_PUT_FORM",
        "HTTP_PUT_JSON",
        "HTTP_DELETE",
    ):
        assert isinstance(executor_for(m), HttpExecutor)


def test_get_with_query_and_headers(server, tmp_path) -> None:
    result, lines = execute(
        tmp_path,
        "HTTP_GET",
        {"url": f"{server}/get?fixed=1", "query": {"q": "a b", "n": 2}, "headers": {"X-Test": "yes"}},
    )
    assert result.status == "COMPLETED" and result.exit_code == "200"
    data = echoed(result)
    assert data["method"] == "GET"
    assert data["query"] == {"fixed": ["1"], "q": ["a b"], "n": ["2"]}
    assert data["headers"]["x-test"] == "yes"
    assert data["body"] == ""
    assert any(s == "stdout" and '"method": "GET"' in line for s, line in lines)
    assert result.stdout and result.stdout[-1] == "}"


def test_url_from_first_script_line(server, tmp_path) -> None:
    result, _ = execute(tmp_path, "HTTP_GET", {"script": [f"{server}/from-script", "ignored"]})
    assert result.exit_code == "200" and echoed(result)["path"] == "/from-script"


@pytest.mark.parametrize(("method", "verb"), [("HTTP_POST_JSON", "POST"), ("HTTP_PUT_JSON", "PUT")])
def test_json_body_from_task_variables(server, tmp_path, method, verb) -> None:
    result, _ = execute(tmp_path, method, {"url": f"{server}/j", "variables": {"name": "ant", "count": 3}})
    data = echoed(result)
    assert result.status == "COMPLETED"
    assert data["method"] == verb
    assert json.loads(data["body"]) == {"name": "ant", "count": "3"}
    assert data["headers"]["content-type"] == "application/json"


@pytest.mark.parametrize(("method", "verb"), [("HTTP_POST_FORM", "POST"), ("HTTP_PUT_FORM", "PUT")])
def test_form_body(server, tmp_path, method, verb) -> None:
    result, _ = execute(tmp_path, method, {"url": f"{server}/f", "variables": {"a": "1", "b": "x y"}})
    data = echoed(result)
    assert data["method"] == verb
    assert parse_qs(data["body"]) == {"a": ["1"], "b": ["x y"]}
    assert data["headers"]["content-type"] == "application/x-www-form-urlencoded"


def test_explicit_body_and_delete(server, tmp_path) -> None:
    result, _ = execute(tmp_path, "HTTP_POST_JSON", {"url": f"{server}/b", "body": {"nested": [1, 2]}})
    assert json.loads(echoed(result)["body"]) == {"nested": [1, 2]}
    result, _ = execute(tmp_path, "HTTP_DELETE", {"url": f"{server}/thing/1"})
    data = echoed(result)
    assert result.exit_code == "200" and data["method"] == "DELETE" and data["body"] == ""


@pytest.mark.parametrize("code", [201, 204, 301, 404, 500])
def test_status_code_is_the_exit_code(server, tmp_path, code) -> None:
    result, _ = execute(tmp_path, "HTTP_GET", {"url": f"{server}/status/{code}"})
    assert result.exit_code == str(code)
    assert result.status == ("COMPLETED" if 200 <= code < 300 else "FAILED")
    if result.status == "FAILED":
        assert str(code) in result.error_message


def test_timeout(server, tmp_path) -> None:
    result, _ = execute(tmp_path, "HTTP_GET", {"url": f"{server}/slow"}, timeout_secs=0.3)
    assert result.status == "FAILED" and result.error_code == "ERR_TASK_TIMEOUT"  # /slow answers after 3 s


def test_cancel_aborts(server, tmp_path) -> None:
    result, _ = execute(tmp_path, "HTTP_GET", {"url": f"{server}/slow"}, cancel_after=0.2)
    assert result.status == "CANCELLED"  # not the 200 that /slow sends after 3 s


def test_invalid_url_and_connection_error(tmp_path) -> None:
    result, _ = execute(tmp_path, "HTTP_GET", {"url": "ftp://example.com/x"})
    assert result.status == "FAILED" and result.error_code == "ERR_VALIDATION"
    result, _ = execute(tmp_path, "HTTP_GET", {})
    assert result.status == "FAILED" and result.error_code == "ERR_VALIDATION"
    result, _ = execute(tmp_path, "HTTP_GET", {"url": "http://127.0.0.1:9/closed"})
    assert result.status == "FAILED" and result.error_code == "ERR_HTTP_REQUEST" and result.exit_code is None


def test_secrets_redacted_from_logged_body(server, tmp_path) -> None:
    result, lines = execute(
        tmp_path,
        "HTTP_GET",
        {"url": f"{server}/s", "headers": {"Authorization": "Bearer sekrit-123"}},
        variables={"API_TOKEN": "sekrit-123"},
    )
    assert "sekrit-123" in result.task_context["response"]  # data for later tasks, not a log
    assert all("sekrit-123" not in line for _, line in lines)
    assert all("sekrit-123" not in line for line in result.stdout)
