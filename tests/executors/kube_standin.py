"""A local STAND-IN for the Kubernetes API server (no real API server can run here).

It implements only what ``KubernetesExecutor`` calls, over real HTTP, so a real
``kubernetes.client.ApiClient`` talks to it unchanged:

- ``POST   /api/v1/namespaces/{ns}/pods``                 create
- ``GET    /api/v1/namespaces/{ns}/pods?watch=true&...``  watch (chunked JSON events)
- ``GET    /api/v1/namespaces/{ns}/pods?labelSelector=``  list
- ``GET    /api/v1/namespaces/{ns}/pods/{name}``          read
- ``GET    /api/v1/namespaces/{ns}/pods/{name}/log``      log (``follow=true`` streams)
- ``DELETE /api/v1/namespaces/{ns}/pods/{name}``          delete (kills the "container")

"Running" a pod means running its main container's command with the local ``/bin/sh`` (the
container file system paths ``/workspace`` and ``/.formicary`` are mapped into a temp dir), so
the executor's step script, markers and exit codes are exercised for real. Images named
``stand-in/pull-error`` report ErrImagePull; ``stand-in/oom`` ends like an OOM-killed container.
Every call is recorded in ``calls`` as ``(verb, pod name)``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class FakePod:
    def __init__(self, body: dict[str, Any], root: str) -> None:
        self.body = body
        self.name = body["metadata"]["name"]
        self.root = tempfile.mkdtemp(prefix=f"pod-{self.name}-", dir=root)
        self.phase = "Pending"
        self.version = 1
        self.log = bytearray()
        self.cond = threading.Condition()
        self.proc: subprocess.Popen[bytes] | None = None
        self.finished = False
        self.deleted = False
        self.waiting: dict[str, str] | None = None
        self.terminated: dict[str, Any] | None = None
        body["metadata"].update({"uid": f"uid-{self.name}", "creationTimestamp": "2024-01-01T00:00:00Z"})

    def _map(self, text: str) -> str:
        return text.replace("/workspace", f"{self.root}/workspace").replace(
            "/.formicary", f"{self.root}/.formicary"
        )

    def start(self) -> None:
        main = self.body["spec"]["containers"][0]
        image = main["image"]
        if image == "stand-in/pull-error":
            self._set(waiting={"reason": "ErrImagePull", "message": f'pull access denied for "{image}"'})
            return
        threading.Thread(target=self._run, args=(main,), daemon=True).start()

    def _run(self, main: dict[str, Any]) -> None:
        time.sleep(0.1)  # "scheduling"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        env.update({e["name"]: self._map(e.get("value", "")) for e in main.get("env", [])})
        os.makedirs(f"{self.root}/.formicary", exist_ok=True)
        cmd = [self._map(c) for c in main["command"]]
        with self.cond:
            if self.deleted:
                return
            self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         start_new_session=True)  # fmt: skip
        self._set(phase="Running")
        oom = main["image"] == "stand-in/oom"
        assert self.proc.stdout is not None
        while True:
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                break
            with self.cond:
                self.log += chunk
                self.cond.notify_all()
            if oom:
                os.killpg(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait()
        code = 128 - code if code < 0 else code
        reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
        self._set(phase="Succeeded" if code == 0 else "Failed",
                  terminated={"exitCode": code, "reason": reason})  # fmt: skip

    def _set(self, **kw: Any) -> None:
        with self.cond:
            for k, v in kw.items():
                setattr(self, k, v)
            if "terminated" in kw:
                self.finished = True
            self.version += 1
            self.cond.notify_all()

    def kill(self) -> None:
        with self.cond:
            self.deleted = True
            self.finished = True
            self.version += 1
            self.cond.notify_all()
            if self.proc is not None and self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def to_json(self) -> dict[str, Any]:
        main = self.body["spec"]["containers"][0]
        state: dict[str, Any] = {}
        if self.waiting:
            state = {"waiting": self.waiting}
        elif self.terminated:
            state = {"terminated": self.terminated}
        elif self.phase == "Running":
            state = {"running": {"startedAt": "2024-01-01T00:00:01Z"}}
        else:
            state = {"waiting": {"reason": "ContainerCreating"}}
        status = {
            "phase": self.phase,
            "containerStatuses": [
                {"name": main["name"], "image": main["image"], "imageID": "", "ready": self.phase == "Running",
                 "restartCount": 0, "state": state}
            ],
        }  # fmt: skip
        meta = dict(self.body["metadata"], resourceVersion=str(self.version))
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": self.body["spec"],
            "status": status,
        }


class KubeStandIn:
    def __init__(self) -> None:
        self.pods: dict[str, FakePod] = {}
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.root = tempfile.mkdtemp(prefix="kube-standin-")
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _not_found(self, name: str) -> None:
                self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "message": f'pods "{name}" not found', "reason": "NotFound", "code": 404})  # fmt: skip

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _parts(self) -> tuple[list[str], dict[str, str]]:
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                return [p for p in url.path.split("/") if p], query

            def do_POST(self) -> None:  # noqa: N802
                parts, _ = self._parts()
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                pod = FakePod(body, standin.root)
                with standin.lock:
                    standin.calls.append(("create", pod.name))
                    if pod.name in standin.pods:
                        self._send(409, {"kind": "Status", "code": 409, "reason": "AlreadyExists"})
                        return
                    standin.pods[pod.name] = pod
                pod.start()
                self._send(201, pod.to_json())

            def do_DELETE(self) -> None:  # noqa: N802
                parts, _ = self._parts()
                name = parts[-1]
                with standin.lock:
                    standin.calls.append(("delete", name))
                    pod = standin.pods.pop(name, None)
                if pod is None:
                    self._not_found(name)
                    return
                pod.kill()
                self._send(200, pod.to_json())

            def do_GET(self) -> None:  # noqa: N802
                parts, query = self._parts()
                if parts[-1] == "pods":
                    if query.get("watch") in ("true", "1"):
                        self._watch(query)
                    else:
                        self._list(query)
                    return
                if parts[-1] == "log":
                    self._log(parts[-2], query)
                    return
                name = parts[-1]
                with standin.lock:
                    standin.calls.append(("read", name))
                    pod = standin.pods.get(name)
                if pod is None:
                    self._not_found(name)
                    return
                self._send(200, pod.to_json())

            def _list(self, query: dict[str, str]) -> None:
                wanted = dict(s.split("=", 1) for s in query.get("labelSelector", "").split(",") if "=" in s)
                with standin.lock:
                    standin.calls.append(("list", ""))
                    pods = list(standin.pods.values())
                items = [p.to_json() for p in pods
                         if all(p.body["metadata"]["labels"].get(k) == v for k, v in wanted.items())]  # fmt: skip
                self._send(200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})

            def _watch(self, query: dict[str, str]) -> None:
                name = query.get("fieldSelector", "").partition("metadata.name=")[2]
                with standin.lock:
                    standin.calls.append(("watch", name))
                    pod = standin.pods.get(name)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                until = time.monotonic() + float(query.get("timeoutSeconds", 5))
                seen = -1
                try:
                    while pod is not None and time.monotonic() < until:
                        with pod.cond:
                            if pod.version == seen:
                                pod.cond.wait(0.05)
                                continue
                            seen = pod.version
                            kind = "DELETED" if pod.deleted else ("ADDED" if seen <= 1 else "MODIFIED")
                            event = {"type": kind, "object": pod.to_json()}
                        self._chunk(json.dumps(event).encode() + b"\n")
                        if pod.deleted:
                            break
                    self._chunk(b"")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped watching

            def _log(self, name: str, query: dict[str, str]) -> None:
                with standin.lock:
                    standin.calls.append(("log", name))
                    pod = standin.pods.get(name)
                if pod is None:
                    self._not_found(name)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                sent = 0
                follow = query.get("follow") in ("true", "1")
                try:
                    while True:
                        with pod.cond:
                            while len(pod.log) == sent and follow and not pod.finished:
                                pod.cond.wait(0.05)
                            data = bytes(pod.log[sent:])
                            done = pod.finished or not follow
                        if data:
                            self._chunk(data)
                            sent += len(data)
                        elif done:
                            break
                    self._chunk(b"")
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def verbs(self, name: str) -> list[str]:
        """The calls for one pod, consecutive repeats (watch re-tries, reads) collapsed."""
        out: list[str] = []
        for verb, pod in self.calls:
            if pod == name and (not out or out[-1] != verb):
                out.append(verb)
        return out

    def close(self) -> None:
        for pod in list(self.pods.values()):
            pod.kill()
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.root, ignore_errors=True)
