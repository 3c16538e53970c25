"""KUBERNETES executor: one pod per task attempt, through the official ``kubernetes`` client.

Call sequence: ``create_namespaced_pod`` (manifest from ``kube_pod.build_pod``) -> watch the
pod (``list_namespaced_pod`` with ``watch=true`` and a field selector on its name) until it runs
or ends, failing early on image pull errors (``ERR_IMAGE_PULL``) -> stream the main container's
log (``read_namespaced_pod_log`` with ``follow=true``) line by line to the task log -> read
the pod once more for the container's termination state (``OOMKilled`` -> ``ERR_OOM``) ->
``delete_namespaced_pod`` in ``finally`` (also after a failure, timeout or cancel; a cancel or
timeout deletes the pod at once, which also ends the log stream).

The main container runs ``ants.containers.step_script``: each command in its own ``sh -c``
with a status marker after it, so ``exit_code`` and ``failed_command`` are exact; after_script
runs in the pod after the commands (not after a timeout or cancel: the pod is gone then). The
task context file is printed by the script at the end and parsed like the SHELL executor's.
Files (artifacts, dependencies, cache): the ant's work directory is the source of truth, as for
DOCKER. The pod does not share it, and no exec/tar round trip is needed: the work directory
(where the artifact hooks put downloaded dependencies and restored cache) travels *in the pod
manifest* as a gzipped tar, base64 in ``FORMICARY_INPUT_<n>`` environment variables (each under
the kernel's 128 KiB limit for one variable), which the script's prologue unpacks into the
working dir and unsets before the first command. After ``after_script`` the script's epilogue
tars the declared ``artifacts.paths`` and ``cache.paths`` (the whole working dir when one is a
glob, or ``kubernetes.copy_back: all``) and prints it base64 on marker lines of its log, which
the ant decodes back into the same relative paths of the work directory, where
``ants.artifact_hooks.collect`` looks for them. Limits: the packed input may not exceed
``max_input_bytes`` (default 768 KiB of base64; a pod manifest must stay well under etcd's
1.5 MiB), else the task fails before a pod is created; the output is bounded by what the
kubelet keeps of a container log (``containerLogMaxSize``, 10 MiB by default). The image needs
``sh``, ``tar``, ``gzip`` and ``base64`` (busybox has them) only when there are files to copy.
Input files are visible to anyone who may read the pod's spec in its namespace.

Ant settings (``AntConfig.kubernetes``): ``namespace``, ``kubeconfig`` (path) and ``context``,
``in_cluster`` (use the pod's service account), or ``host`` + ``token`` (+ ``verify_ssl``,
``ca_file``); ``watch_secs`` (one watch call, default 10), ``start_timeout_secs`` (default 600)
``max_input_bytes``, ``copy_back`` (``declared`` | ``all``) and the pod settings documented
in ``kube_pod``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import os
import shlex
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

from ants.containers import (
    CONTEXT_FILE,
    LABEL_ANT,
    LABEL_ATTEMPT,
    LABEL_MANAGED,
    LABEL_ORG,
    LABEL_REQUEST,
    LABEL_TASK,
    LABEL_TASK_TYPE,
    LineSplitter,
    StepTracker,
    container_working_dir,
    new_marker,
    step_script,
)
from ants.executors.base import (
    ERR_TASK_TIMEOUT,
    ERR_VALIDATION,
    ExecutionContext,
    ExecutionResult,
    OutputSink,
    as_dict,
    as_list,
    as_str,
)
from ants.executors.kube_pod import MAIN_CONTAINER, PodSpecError, build_pod, pod_name
from ants.executors.shell import parse_dotenv
from ants.protocol import STATUS_CANCELLED, STATUS_COMPLETED, STATUS_FAILED, TaskRequest

ERR_IMAGE_PULL = "ERR_IMAGE_PULL"
ERR_OOM = "ERR_OOM"
ERR_POD = "ERR_POD"
PULL_ERRORS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
CONFIG_ERRORS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
TICK_SECS = 0.05


class _Stop(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why  # "cancelled" | "timeout"


class _PodFailed(Exception):
    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


class KubernetesExecutor:
    """Runs KUBERNETES tasks. ``api_client`` may be injected (tests point one at a stand-in)."""

    def __init__(self, config: Any = None, api_client: Any = None) -> None:
        self.config = config
        self.settings: dict[str, Any] = dict(getattr(config, "kubernetes", None) or {})
        self.ant_id = getattr(config, "ant_id", "") or "ant"
        self.namespace = as_str(self.settings.get("namespace") or "default")
        self._api_client = api_client
        self._lock = threading.Lock()

    # -- client --------------------------------------------------------------------------------
    def core(self) -> Any:
        from kubernetes import client, config

        with self._lock:
            if self._api_client is None:
                cfg = client.Configuration()
                s = self.settings
                if s.get("host"):
                    cfg.host = as_str(s["host"])
                    if s.get("token"):
                        cfg.api_key = {"authorization": f"Bearer {as_str(s['token'])}"}
                    cfg.verify_ssl = bool(s.get("verify_ssl", True))
                    if s.get("ca_file"):
                        cfg.ssl_ca_cert = as_str(s["ca_file"])
                elif s.get("in_cluster"):
                    config.load_incluster_config(client_configuration=cfg)
                else:
                    config.load_kube_config(
                        config_file=s.get("kubeconfig") or None,
                        context=s.get("context") or None,
                        client_configuration=cfg,
                    )
                self._api_client = client.ApiClient(cfg)
            return client.CoreV1Api(self._api_client)

    # -- listing / terminating -----------------------------------------------------------------
    def list_containers(self, organization_id: str = "") -> list[dict[str, Any]]:
        selector = f"{LABEL_MANAGED}=formicary,{LABEL_ANT}={self.ant_id}"
        if organization_id:
            selector += f",{LABEL_ORG}={organization_id}"
        pods = self.core().list_namespaced_pod(self.namespace, label_selector=selector)
        out = []
        for pod in pods.items:
            labels = pod.metadata.labels or {}
            out.append(
                {
                    "id": pod.metadata.name,
                    "name": pod.metadata.name,
                    "method": "KUBERNETES",
                    "ant_id": self.ant_id,
                    "image": pod.spec.containers[0].image if pod.spec and pod.spec.containers else "",
                    "state": (pod.status.phase or "").upper() if pod.status else "",
                    "status": (pod.status.phase or "") if pod.status else "",
                    "started_at": pod.metadata.creation_timestamp.timestamp()
                    if pod.metadata.creation_timestamp
                    else None,
                    "role": "main",
                    "task_execution_id": labels.get(LABEL_TASK, ""),
                    "attempt": labels.get(LABEL_ATTEMPT, ""),
                    "job_request_id": labels.get(LABEL_REQUEST, ""),
                    "task_type": labels.get(LABEL_TASK_TYPE, ""),
                    "organization_id": labels.get(LABEL_ORG, ""),
                }
            )
        return out

    def terminate(self, container_id: str, organization_id: str = "") -> bool:
        if not any(c["id"] == container_id for c in self.list_containers(organization_id)):
            return False
        self._delete(self.core(), container_id)
        return True

    def _delete(self, core: Any, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise

    # -- entry point ---------------------------------------------------------------------------
    def execute(self, req: TaskRequest, ctx: ExecutionContext) -> ExecutionResult:
        from kubernetes.client.exceptions import ApiException

        sink = OutputSink(req, ctx.log)
        redact, tail, markers, emit = sink.redact, sink.tail, sink.markers, sink.emit

        def failed(code: str, msg: str, **kw: Any) -> ExecutionResult:
            msg = redact(msg)
            emit("system", msg)
            res = ExecutionResult(
                status=STATUS_FAILED, exit_message=msg, error_code=code, error_message=msg, **kw
            )
            res.stdout = list(tail)
            return res

        deadline = ctx.deadline
        if req.timeout_secs:
            own = time.monotonic() + req.timeout_secs
            deadline = own if deadline is None else min(deadline, own)
        commands = as_list(req.spec.get("before_script")) + as_list(req.spec.get("script"))
        after = as_list(req.spec.get("after_script"))
        marker = new_marker()
        copy_warnings: list[str] = []
        try:
            wd = container_working_dir(req.spec)
            inputs = pack_input(ctx.workdir, int(self.settings.get("max_input_bytes", MAX_INPUT_BYTES)))
            paths = declared_paths(
                req.spec, as_str(self.settings.get("copy_back") or "declared"), copy_warnings
            )
            script = step_script(
                commands, after, marker, wd, CONTEXT_FILE,
                prologue=unpack_script(len(inputs)), epilogue=pack_script(paths, marker),
            )  # fmt: skip
            pod = build_pod(req, self.settings, ant_id=self.ant_id, script=script, name=pod_name(req))
            pod["spec"]["containers"][0].setdefault("env", []).extend(
                {"name": f"{INPUT_ENV}{i}", "value": chunk} for i, chunk in enumerate(inputs)
            )
        except (PodSpecError, ValueError) as exc:
            return failed(ERR_VALIDATION, str(exc))
        if inputs:
            emit("system", f"copying the work directory into the pod ({sum(map(len, inputs))} bytes packed)")
        name = pod["metadata"]["name"]
        tracker = StepTracker(marker, lambda line: emit("stdout", line))
        core = None
        created = False
        try:
            core = self.core()
            emit("system", f"creating pod {name} in namespace {self.namespace}")
            core.create_namespaced_pod(self.namespace, pod)
            created = True
            self._await_start(core, name, ctx, deadline, emit)
            self._stream_logs(core, name, ctx, deadline, tracker)
            tracker.finish()
            state = self._final_state(core, name, ctx, deadline)
        except _Stop as stop:
            if core is not None and created:
                with contextlib.suppress(Exception):
                    self._delete(core, name)
            tracker.finish()
            idx = len(tracker.main)
            cmd = commands[idx] if idx < len(commands) else ""
            if stop.why == "cancelled":
                emit("system", "task cancelled")
                res = ExecutionResult(
                    status=STATUS_CANCELLED, exit_message="task cancelled", failed_command=redact(cmd)
                )
                res.stdout = list(tail)
                return res
            msg = f"task timed out after {req.timeout_secs:g}s" if req.timeout_secs else "task timed out"
            return failed(ERR_TASK_TIMEOUT, msg, failed_command=redact(cmd))
        except _PodFailed as exc:
            return failed(exc.error_code, exc.message)
        except ApiException as exc:
            return failed(
                ERR_POD, f"kubernetes API error: {exc.status} {exc.reason}: {(exc.body or '')[:500]}"
            )
        except Exception as exc:  # connection refused, bad kubeconfig, ...
            return failed(ERR_POD, f"kubernetes error: {type(exc).__name__}: {exc}")
        finally:
            if core is not None and created:
                try:
                    self._delete(core, name)
                    emit("system", f"pod {name} deleted")
                except Exception as exc:
                    emit("system", f"cannot delete pod {name}: {exc}")

        result = ExecutionResult(status=STATUS_COMPLETED, exit_code="0")
        failed_idx = next((i for i in sorted(tracker.main) if tracker.main[i] != 0), None)
        reason, exit_code = state
        if failed_idx is not None:
            code = tracker.main[failed_idx]
            result = ExecutionResult(
                status=STATUS_FAILED,
                exit_code=str(code),
                exit_message=f"command exited with code {code}",
                error_message=f"command exited with code {code}",
                failed_command=redact(commands[failed_idx]),
            )
        elif len(tracker.main) < len(commands) or (exit_code not in (None, 0)):
            idx = len(tracker.main)
            cmd = commands[idx] if idx < len(commands) else ""
            code = exit_code if exit_code is not None else 1
            msg = f"container ended with code {code}" + (f" ({reason})" if reason else "")
            result = ExecutionResult(
                status=STATUS_FAILED,
                exit_code=str(code),
                exit_message=msg,
                error_code="" if reason != "OOMKilled" else ERR_OOM,
                error_message=msg,
                failed_command=redact(cmd),
            )
        if reason == "OOMKilled" and result.status == STATUS_FAILED:
            result.error_code = ERR_OOM
            result.error_message = result.exit_message = "out of memory (container.memory_limit exceeded)"
            emit("system", result.error_message)
        for _i, code in sorted(tracker.after.items()):
            if code != 0:
                warning = f"after_script failed (exit code {code}); ignored"
                emit("system", warning)
                result.warnings.append(warning)
                break
        context = dict(markers)
        context.update(parse_dotenv("\n".join(tracker.context_lines)))
        result.task_context.update(context)
        result.job_context.update(sink.job_markers)
        if paths is None or paths:
            try:
                unpacked = unpack_output(tracker.out_lines, ctx.workdir)
                if unpacked:
                    emit("system", f"copied {unpacked} files back from the pod")
            except (ValueError, OSError, tarfile.TarError) as exc:
                copy_warnings.append(f"cannot copy files out of the pod: {exc}")
        for warning in copy_warnings:
            emit("system", warning)
        result.warnings.extend(copy_warnings)
        result.stdout = list(tail)
        return result

    # -- steps ---------------------------------------------------------------------------------
    def _check(self, ctx: ExecutionContext, deadline: float | None) -> None:
        if ctx.cancel_event.is_set():
            raise _Stop("cancelled")
        if deadline is not None and time.monotonic() >= deadline:
            raise _Stop("timeout")

    def _await_start(
        self, core: Any, name: str, ctx: ExecutionContext, deadline: float | None, emit: Any
    ) -> None:
        """Watch the pod until it runs (or already ended); fail fast on image pull errors."""
        from kubernetes import watch

        start_by = time.monotonic() + float(self.settings.get("start_timeout_secs", 600))
        watch_secs = max(1, int(self.settings.get("watch_secs", 10)))
        last_phase = None
        while True:
            self._check(ctx, deadline)
            if time.monotonic() >= start_by:
                raise _PodFailed(ERR_POD, f"pod {name} did not start in time (phase {last_phase})")
            w = watch.Watch()
            try:
                for event in w.stream(
                    core.list_namespaced_pod,
                    self.namespace,
                    field_selector=f"metadata.name={name}",
                    timeout_seconds=watch_secs,
                ):
                    pod = event["object"]
                    phase = pod.status.phase if pod.status else None
                    if phase != last_phase:
                        emit("system", f"pod {name}: {phase}")
                        last_phase = phase
                    if event.get("type") == "DELETED":
                        raise _PodFailed(ERR_POD, f"pod {name} was deleted before it ran")
                    for cs in (pod.status.container_statuses or []) if pod.status else []:
                        waiting = cs.state.waiting if cs.state else None
                        if waiting is not None and waiting.reason in PULL_ERRORS:
                            raise _PodFailed(
                                ERR_IMAGE_PULL,
                                f"cannot pull image {cs.image}: {waiting.message or waiting.reason}",
                            )
                        if waiting is not None and waiting.reason in CONFIG_ERRORS:
                            raise _PodFailed(
                                ERR_POD, f"container {cs.name}: {waiting.reason}: {waiting.message or ''}"
                            )
                    if phase in ("Running", "Succeeded", "Failed"):
                        return
                    self._check(ctx, deadline)
            finally:
                w.stop()

    def _stream_logs(
        self, core: Any, name: str, ctx: ExecutionContext, deadline: float | None, tracker: StepTracker
    ) -> None:
        resp = core.read_namespaced_pod_log(
            name, self.namespace, container=MAIN_CONTAINER, follow=True, _preload_content=False
        )
        done = threading.Event()
        splitter = LineSplitter()

        def reader() -> None:
            try:
                for chunk in resp.stream(4096, decode_content=True):
                    for line in splitter.feed(chunk):
                        tracker.feed(line)
            except Exception:
                pass
            finally:
                for line in splitter.flush():
                    tracker.feed(line)
                done.set()

        thread = threading.Thread(target=reader, name=f"kube-log-{name}", daemon=True)
        thread.start()
        try:
            while not done.wait(TICK_SECS):
                self._check(ctx, deadline)
        finally:
            if not done.is_set():
                # Deleting the pod ends the log stream on the server side; closing the response
                # from this thread could block on the reader, so it is done on a helper thread.
                with contextlib.suppress(Exception):
                    self._delete(core, name)
                if not done.wait(2.0):
                    threading.Thread(target=_close_quietly, args=(resp,), daemon=True).start()

    def _final_state(
        self, core: Any, name: str, ctx: ExecutionContext, deadline: float | None
    ) -> tuple[str, int | None]:
        """(termination reason, exit code) of the main container, waiting briefly for it to end."""
        until = time.monotonic() + float(self.settings.get("final_state_secs", 30))
        while True:
            pod = core.read_namespaced_pod(name, self.namespace)
            for cs in (pod.status.container_statuses or []) if pod.status else []:
                if cs.name == MAIN_CONTAINER and cs.state and cs.state.terminated:
                    term = cs.state.terminated
                    return as_str(term.reason or ""), term.exit_code
            if time.monotonic() >= until:
                return "", None
            self._check(ctx, deadline)
            time.sleep(0.2)


# -- files in and out of the pod ---------------------------------------------------------------

INPUT_ENV = "FORMICARY_INPUT_"
INPUT_CHUNK_CHARS = 96 * 1024  # one environment string may not exceed 128 KiB (MAX_ARG_STRLEN)
MAX_INPUT_BYTES = 768 * 1024
GLOB_CHARS = set("*?[")


def pack_input(workdir: Path, limit: int) -> list[str]:
    """The work directory's contents as base64 chunks of a tar.gz; [] when it is empty."""
    workdir = Path(workdir)
    if not workdir.is_dir() or not any(workdir.iterdir()):
        return []
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for item in sorted(workdir.iterdir()):
            tar.add(item, arcname=item.name)
    text = base64.b64encode(buf.getvalue()).decode("ascii")
    if len(text) > limit:
        raise ValueError(
            f"the work directory (dependencies, cache) packs to {len(text)} bytes, more than a pod "
            f"manifest may carry (kubernetes.max_input_bytes = {limit}); use DOCKER for such tasks"
        )
    return [text[i : i + INPUT_CHUNK_CHARS] for i in range(0, len(text), INPUT_CHUNK_CHARS)]


def unpack_script(chunks: int) -> str:
    """sh that unpacks ``FORMICARY_INPUT_<n>`` into the working dir and forgets the variables."""
    if not chunks:
        return ""
    names = [f"{INPUT_ENV}{i}" for i in range(chunks)]
    parts = "; ".join(f'printf %s "${n}"' for n in names)
    return (
        f"{{ {parts}; }} | base64 -d | tar -xzf - || "
        "{ echo 'formicary: cannot unpack the work directory (the image needs tar, gzip, base64)'; exit 125; }\n"
        f"unset {' '.join(names)}"
    )


def declared_paths(spec: dict[str, Any], copy_back: str, warnings: list[str]) -> list[str] | None:
    """Relative paths to send back after the script; None for the whole working dir."""
    if copy_back == "all":
        return None
    paths: list[str] = []
    for key in ("artifacts", "cache"):
        for p in as_dict(spec.get(key)).get("paths") or []:
            text = as_str(p).strip()
            if not text:
                continue
            if set(text) & GLOB_CHARS:
                return None
            clean = os.path.normpath(text.lstrip("/"))
            if clean == ".." or clean.startswith("../"):
                warnings.append(f"artifact path {text!r} is outside the working directory; not copied")
                continue
            if clean not in paths:
                paths.append(clean)
    return paths


def pack_script(paths: list[str] | None, marker: str) -> str:
    """sh that prints a tar.gz of ``paths`` (None: the working dir) as ``<marker> out`` lines."""
    if paths == []:
        return ""
    emit = f"base64 | sed 's/^/{marker} out /'"
    if paths is None:
        return f"tar -czf - . | {emit}"
    quoted = " ".join(shlex.quote(p) for p in paths)
    return (
        f'set --; for __fc_p in {quoted}; do [ -e "$__fc_p" ] && set -- "$@" "$__fc_p"; done\n'
        f'if [ $# -gt 0 ]; then tar -czf - "$@" | {emit}; fi'
    )


def unpack_output(lines: list[str], workdir: Path) -> int:
    """Extract what ``pack_script`` printed into ``workdir``; the number of files."""
    if not lines:
        return 0
    try:
        data = base64.b64decode("".join(lines), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the copied files are damaged ({exc}); was the pod log truncated?") from None
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
        tar.extractall(workdir, filter="data")
    return sum(1 for m in members if m.isfile())


def _close_quietly(resp: Any) -> None:
    with contextlib.suppress(Exception):
        resp.close()
        resp.release_conn()
