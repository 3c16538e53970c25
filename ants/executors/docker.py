"""DOCKER executor: runs a task's commands inside a container through the Docker engine API.

Life of a task (everything created is labelled with the ant, task, attempt and organization and
removed in ``finally``, whether the task completed, failed, timed out or was cancelled):

1. Images (the task's ``container.image`` and each service's) are pulled according to the pull
   policy (``container.image_pull_policy``, else the ant's ``docker.pull_policy``:
   ``if_not_present`` (default), ``always`` or ``never``) with the ant's registry credentials.
   A missing image (the engine answers 404 or 500 depending on the registry) fails the task with
   ``ERR_IMAGE_PULL``.
2. Services: with ``services`` a per-task user-defined bridge network is created and every
   service container joins it with its ``name`` and ``alias`` as DNS aliases, so the task reaches
   them by name (``redis:6379``). Chosen because user-defined networks work even on an engine
   started with ``--bridge=none --iptables=false`` (the test engine); ``host_network: true``
   instead puts everything on the host network (services then listen on localhost).
   Without services: ``network_mode`` of the task, else ``docker.network_mode``, else the
   engine's default.
3. The main container runs a keep-alive loop as PID 1 (entrypoint ``/bin/sh -c``), with the
   task environment (as the SHELL executor, see ``ants.containers.task_environment``), memory
   limit (``container.memory_limit``, swap disabled) and CPU limit (``container.cpu_limit``,
   Kubernetes quantities ``2Gi`` / ``500m``), ``privileged``, ``working_dir`` (default
   ``/workspace``), ``container.volumes`` (``host_path`` -> bind mount, ``empty_dir`` -> a
   task-scoped named volume shared by name with services; other kinds are Kubernetes-only and
   ignored with a warning).
4. Artifacts and cache: the ant's work directory is the source of truth and mirrors the
   container's working dir. Before the first command the work directory (where the artifact
   hooks put downloaded dependencies and restored cache) is copied into the container's working
   dir with the archive API (``put_archive``; works with remote engines, unlike bind mounts).
   Afterwards the declared ``artifacts.paths`` and ``cache.paths`` (the whole working dir when
   one is a glob, or ``docker.copy_back: all``) are copied back with ``get_archive`` to the same
   relative paths, where the artifact hooks (``ants.artifact_hooks.collect``) look for them.
5. ``before_script`` + ``script``: one ``exec`` of ``/bin/sh -c <command>`` each, output
   streamed line by line as it comes; the first non-zero status stops the task (FAILED,
   ``exit_code``, ``failed_command``). Exit 137 with an OOM kill recorded in the container's
   memory cgroup -> ``ERR_OOM``. ``after_script`` always runs (not after a cancel) with its own
   budget; its failure is a warning.
6. Timeout: every process of the task is killed (``kill -9 -1`` inside the container; PID 1
   survives), FAILED with ``ERR_TASK_TIMEOUT``, after_script still runs. Cancel: the container
   is killed at once -> CANCELLED.
7. Task context: ``$FORMICARY_CONTEXT_FILE`` (``/.formicary/context.env`` in the container) and
   ``##formicary:context KEY=VALUE`` lines, as the SHELL executor.

Ant settings (``AntConfig.docker``): ``host`` (engine URL; default ``$DOCKER_HOST``),
``tls`` (``{ca_cert, client_cert, client_key, verify}``), ``registry`` (``{server, username,
password}``) or ``registries`` (a list of those), ``pull_policy``, ``network_mode``,
``working_dir``, ``default_memory_limit`` / ``default_cpu_limit``, ``max_memory_limit`` /
``max_cpu_limit``, ``allow_privileged`` (default true), ``allow_host_paths`` (default: true on an ant of one organization, false on a shared one),
``copy_back`` (``declared`` | ``all``), ``api_timeout_secs`` (default 3600), ``labels``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import shutil
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ants.containers import (
    CONTEXT_DIR,
    CONTEXT_FILE,
    DEFAULT_WORKING_DIR,
    LABEL_ANT,
    LABEL_ATTEMPT,
    LABEL_MANAGED,
    LABEL_ORG,
    LABEL_REQUEST,
    LABEL_ROLE,
    LABEL_TASK,
    LABEL_TASK_TYPE,
    LineSplitter,
    QuantityError,
    container_working_dir,
    cpu_nano,
    memory_bytes,
    task_environment,
    task_labels,
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
from ants.executors.shell import DEFAULT_AFTER_SCRIPT_TIMEOUT_SECS, parse_dotenv
from ants.protocol import STATUS_CANCELLED, STATUS_COMPLETED, STATUS_FAILED, TaskRequest

ERR_IMAGE_PULL = "ERR_IMAGE_PULL"
ERR_OOM = "ERR_OOM"
ERR_CONTAINER = "ERR_CONTAINER"
KEEPALIVE = "trap 'exit 0' TERM INT; while :; do sleep 86400 & wait $!; done"
TICK_SECS = 0.05
INSPECT_EVERY_SECS = 0.25
ORPHAN_GRACE_SECS = 0.2
GLOB_CHARS = set("*?[")


class _Fail(Exception):
    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


def _docker():
    import docker  # imported lazily: only DOCKER tasks need the SDK

    return docker


class DockerExecutor:
    """Runs DOCKER tasks; one instance serves concurrent tasks (one engine client, thread-safe)."""

    def __init__(self, config: Any = None, client: Any = None) -> None:
        self.config = config
        self.settings: dict[str, Any] = dict(getattr(config, "docker", None) or {})
        self.ant_id = getattr(config, "ant_id", "") or "ant"
        # serves every organization (no organization_id): host paths are off unless allowed
        self.shared = not getattr(config, "organization_id", "")
        self._client = client
        self._lock = threading.Lock()

    # -- engine client -------------------------------------------------------------------------
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                docker = _docker()
                kwargs: dict[str, Any] = {"timeout": int(self.settings.get("api_timeout_secs", 3600))}
                host = self.settings.get("host") or os.environ.get("DOCKER_HOST")
                tls = as_dict(self.settings.get("tls"))
                if tls:
                    kwargs["tls"] = docker.tls.TLSConfig(
                        client_cert=(tls["client_cert"], tls["client_key"])
                        if tls.get("client_cert")
                        else None,
                        ca_cert=tls.get("ca_cert"),
                        verify=tls.get("verify", True),
                    )
                if host:
                    self._client = docker.DockerClient(base_url=host, **kwargs)
                else:
                    self._client = docker.from_env(**kwargs)
            return self._client

    # -- listing / terminating (LIST_CONTAINERS / TERMINATE_CONTAINER) --------------------------
    def list_containers(self, organization_id: str = "") -> list[dict[str, Any]]:
        filters = {"label": [f"{LABEL_MANAGED}=formicary", f"{LABEL_ANT}={self.ant_id}"]}
        if organization_id:
            filters["label"].append(f"{LABEL_ORG}={organization_id}")
        out = []
        for c in self.client().api.containers(all=False, filters=filters):
            labels = c.get("Labels") or {}
            out.append(
                {
                    "id": c.get("Id", "")[:12],
                    "name": (c.get("Names") or ["?"])[0].lstrip("/"),
                    "method": "DOCKER",
                    "ant_id": self.ant_id,
                    "image": c.get("Image", ""),
                    "state": (c.get("State") or "").upper(),
                    "status": c.get("Status", ""),
                    "started_at": c.get("Created"),
                    "role": labels.get(LABEL_ROLE, ""),
                    "task_execution_id": labels.get(LABEL_TASK, ""),
                    "attempt": labels.get(LABEL_ATTEMPT, ""),
                    "job_request_id": labels.get(LABEL_REQUEST, ""),
                    "task_type": labels.get(LABEL_TASK_TYPE, ""),
                    "organization_id": labels.get(LABEL_ORG, ""),
                }
            )
        return out

    def terminate(self, container_id: str, organization_id: str = "") -> bool:
        """Kill one of this ant's containers (the task then ends FAILED/cancelled; cleanup follows)."""
        ids = {c["id"]: c for c in self.list_containers(organization_id)}
        match = [
            c
            for cid, c in ids.items()
            if container_id and (cid.startswith(container_id[:12]) or c["name"] == container_id)
        ]
        if not match:
            return False
        with contextlib.suppress(Exception):
            self.client().api.kill(match[0]["id"])
        return True

    # -- entry point ---------------------------------------------------------------------------
    def execute(self, req: TaskRequest, ctx: ExecutionContext) -> ExecutionResult:
        run = _Run(self, req, ctx)
        return run.go()


class _Run:
    """State of one task attempt."""

    def __init__(self, ex: DockerExecutor, req: TaskRequest, ctx: ExecutionContext) -> None:
        self.ex = ex
        self.req = req
        self.ctx = ctx
        self.memory_limited = False
        self.settings = ex.settings
        self.spec = req.spec
        self.sink = OutputSink(req, ctx.log)
        self.redact, self.tail, self.markers = self.sink.redact, self.sink.tail, self.sink.markers
        self.warnings: list[str] = []
        # names of the task's containers, network and volumes: keyed by organization and task, so
        # tasks of different organizations never share one (docs/security.md)
        org = re.sub(r"[^A-Za-z0-9]", "", req.organization_id)[:20] or "0"
        self.prefix = f"formicary-o{org}-{req.task_execution_id}-{req.attempt}-{secrets.token_hex(3)}"
        self.containers: list[str] = []
        self.volumes: list[str] = []
        self.network: str | None = None
        self.main: str | None = None
        deadline = ctx.deadline
        if req.timeout_secs is not None and req.timeout_secs > 0:
            own = time.monotonic() + req.timeout_secs
            deadline = own if deadline is None else min(deadline, own)
        self.deadline = deadline

    def emit(self, stream: str, line: str) -> None:
        self.sink.emit(stream, line)

    def fail(self, error_code: str, msg: str, **kw: Any) -> ExecutionResult:
        msg = self.redact(msg)
        self.emit("system", msg)
        return ExecutionResult(
            status=STATUS_FAILED, exit_message=msg, error_code=error_code, error_message=msg, **kw
        )

    # -- the whole run -------------------------------------------------------------------------
    def go(self) -> ExecutionResult:
        docker = _docker()
        try:
            self.ctx.workdir.mkdir(parents=True, exist_ok=True)
            # The container's working dir mirrors the ant's work directory root, where the
            # artifact hooks put downloaded dependencies and look for artifact/cache paths.
            self.host_cwd = self.ctx.workdir.resolve()
            self.wd = container_working_dir(
                self.spec, as_str(self.settings.get("working_dir") or DEFAULT_WORKING_DIR)
            )
        except (ValueError, OSError) as exc:
            result = self.fail(ERR_VALIDATION, str(exc))
            result.stdout = list(self.tail)
            return result
        try:
            try:
                self.api = self.ex.client().api
                self._setup()
                result = self._commands()
            except _Cancelled:
                self.emit("system", "task cancelled")
                result = ExecutionResult(status=STATUS_CANCELLED, exit_message="task cancelled")
            except _Fail as exc:
                result = self.fail(exc.error_code, exc.message)
            except docker.errors.DockerException as exc:
                result = self.fail(ERR_CONTAINER, f"docker engine error: {exc}")
            if result.status != STATUS_CANCELLED and self.main is not None:
                try:
                    self._copy_back()
                    context = dict(self.markers)
                    context.update(self._read_context())
                    result.task_context.update(context)
                    result.job_context.update(self.sink.job_markers)
                except docker.errors.DockerException as exc:
                    result.warnings.append(self.redact(f"cannot copy files out of the container: {exc}"))
        finally:
            self._cleanup()
        result.warnings = self.warnings + result.warnings
        result.stdout = list(self.tail)
        return result

    # -- setup ---------------------------------------------------------------------------------
    def _labels(self, role: str) -> dict[str, str]:
        labels = {str(k): as_str(v) for k, v in as_dict(self.settings.get("labels")).items()}
        labels.update(task_labels(self.req, self.ex.ant_id, role))
        return labels

    def _check_stop(self) -> None:
        if self.ctx.cancel_event.is_set():
            raise _Cancelled()
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise _Fail(ERR_TASK_TIMEOUT, "task timed out while preparing containers")

    def _setup(self) -> None:
        container = as_dict(self.spec.get("container"))
        image = as_str(container.get("image")).strip() or as_str(self.settings.get("default_image")).strip()
        if not image:
            raise _Fail(ERR_VALIDATION, f"task {self.req.task_type}: container.image is required for DOCKER")
        services = [s for s in (self.spec.get("services") or []) if isinstance(s, dict)]
        policy = as_str(
            container.get("image_pull_policy") or self.settings.get("pull_policy") or "if_not_present"
        )
        for img in [image] + [as_str(s.get("image")) for s in services]:
            if not img:
                raise _Fail(ERR_VALIDATION, "services: every service needs an image")
            self._check_stop()
            self._ensure_image(img, policy)

        privileged = bool(self.spec.get("privileged"))
        if privileged and self.settings.get("allow_privileged", True) is False:
            raise _Fail(ERR_VALIDATION, "privileged containers are not allowed on this ant")
        env = task_environment(self.req, self.wd, CONTEXT_FILE)
        binds, warnings = self._volumes(container.get("volumes"), "container.volumes")
        self.warnings.extend(warnings)

        host_network = bool(self.spec.get("host_network"))
        network_mode = "host" if host_network else as_str(self.spec.get("network_mode") or "") or None
        if services and not host_network:
            self.network = self.prefix
            self.api.create_network(self.network, driver="bridge", labels=self._labels("network"))
            network_mode = self.network
        elif network_mode is None:
            network_mode = as_str(self.settings.get("network_mode") or "") or None

        for i, svc in enumerate(services):
            self._check_stop()
            self._start_service(i, svc, env, privileged, network_mode)

        mem = container.get("memory_limit") or self.settings.get("default_memory_limit")
        cpu = container.get("cpu_limit") or self.settings.get("default_cpu_limit")
        host_config: dict[str, Any] = {"binds": binds, "privileged": privileged}
        try:
            if mem not in (None, ""):
                host_config["mem_limit"] = memory_bytes(mem, "container.memory_limit")
                host_config["memswap_limit"] = host_config["mem_limit"]  # no swap: the limit is real
                self.memory_limited = True
                cap = self.settings.get("max_memory_limit")
                if cap and host_config["mem_limit"] > memory_bytes(cap, "docker.max_memory_limit"):
                    raise _Fail(
                        ERR_VALIDATION, f"container.memory_limit: {mem} exceeds the ant's maximum {cap}"
                    )
            if cpu not in (None, ""):
                host_config["nano_cpus"] = cpu_nano(cpu, "container.cpu_limit")
                cap = self.settings.get("max_cpu_limit")
                if cap and host_config["nano_cpus"] > cpu_nano(cap, "docker.max_cpu_limit"):
                    raise _Fail(ERR_VALIDATION, f"container.cpu_limit: {cpu} exceeds the ant's maximum {cap}")
        except QuantityError as exc:
            raise _Fail(ERR_VALIDATION, str(exc)) from None
        if network_mode:
            host_config["network_mode"] = network_mode
        self._check_stop()
        created = self.api.create_container(
            image,
            command=[KEEPALIVE],
            entrypoint=["/bin/sh", "-c"],
            environment=env,
            working_dir="/",
            labels=self._labels("main"),
            name=f"{self.prefix}-main",
            host_config=self.api.create_host_config(**host_config),
            stdin_open=False,
            tty=False,
        )
        self.main = main = created["Id"]
        self.containers.append(main)
        self.api.put_archive(self.main, "/", self._workdir_tar())
        self.api.start(self.main)
        self.emit("system", f"container {self.prefix}-main started from {image}")

    def _ensure_image(self, image: str, policy: str) -> None:
        docker = _docker()
        policy = policy.lower().replace("-", "_")
        if policy in ("ifnotpresent",):
            policy = "if_not_present"
        if policy not in ("always", "if_not_present", "never"):
            raise _Fail(ERR_VALIDATION, f"pull policy {policy!r} must be always, if_not_present or never")
        if policy != "always":
            try:
                self.api.inspect_image(image)
                return
            except docker.errors.ImageNotFound:
                if policy == "never":
                    raise _Fail(
                        ERR_IMAGE_PULL, f"image {image} is not present and the pull policy is never"
                    ) from None
        repo, tag = _split_image(image)
        self.emit("system", f"pulling image {image}")
        try:
            self.api.pull(repo, tag=tag, auth_config=self._auth_for(image))
        except docker.errors.APIError as exc:  # 404 (no such image) or 500 (registry unreachable)
            raise _Fail(ERR_IMAGE_PULL, f"cannot pull image {image}: {exc.explanation or exc}") from None

    def _auth_for(self, image: str) -> dict[str, str] | None:
        registries = list(self.settings.get("registries") or [])
        if self.settings.get("registry"):
            registries.append(self.settings["registry"])
        first = image.split("/", 1)[0]
        image_server = (
            first if "/" in image and ("." in first or ":" in first or first == "localhost") else "docker.io"
        )
        for reg in registries:
            if not isinstance(reg, dict) or not reg.get("username"):
                continue
            server = as_str(reg.get("server") or "docker.io")
            server = re.sub(r"^https?://", "", server).rstrip("/")
            if server in ("index.docker.io", "registry-1.docker.io"):
                server = "docker.io"
            if server == image_server:
                return {"username": as_str(reg["username"]), "password": as_str(reg.get("password"))}
        return None

    def _volumes(self, spec: Any, where: str) -> tuple[list[str], list[str]]:
        binds, warnings = [], []
        for kind, entries in as_dict(spec).items():
            for entry in entries or []:
                if not isinstance(entry, dict) or not entry.get("mount_path"):
                    raise _Fail(ERR_VALIDATION, f"{where}.{kind}: every volume needs a mount_path")
                mount = as_str(entry["mount_path"])
                mode = "ro" if entry.get("read_only") else "rw"
                if kind == "host_path":
                    # a host folder is shared by every task that names it: on an ant serving several
                    # organizations only when the operator says so
                    if self.settings.get("allow_host_paths", not self.ex.shared) is not True:
                        raise _Fail(
                            ERR_VALIDATION,
                            f"{where}.host_path: host paths are not allowed on this ant"
                            + (" (a shared ant: FORMICARY_ANT_DOCKER_ALLOW_HOST_PATHS=true allows them)"
                               if self.ex.shared else ""),
                        )  # fmt: skip
                    binds.append(f"{as_str(entry.get('host_path') or entry.get('path'))}:{mount}:{mode}")
                elif kind == "empty_dir":
                    name = (
                        f"{self.prefix}-{re.sub(r'[^A-Za-z0-9_.-]', '-', as_str(entry.get('name') or 'vol'))}"
                    )
                    if name not in self.volumes:
                        self.api.create_volume(name, labels=self._labels("volume"))
                        self.volumes.append(name)
                    binds.append(f"{name}:{mount}:{mode}")
                else:
                    warnings.append(f"{where}.{kind} is only supported by KUBERNETES; ignored")
        return binds, warnings

    def _start_service(
        self, i: int, svc: dict[str, Any], env: dict[str, str], privileged: bool, network_mode: str | None
    ) -> None:
        name = as_str(svc.get("name") or f"svc-{i}")
        svc_env = dict(env)
        svc_env.update({str(k): as_str(v) for k, v in as_dict(svc.get("environment")).items()})
        binds, warnings = self._volumes(svc.get("volumes"), f"services[{i}].volumes")
        self.warnings.extend(warnings)
        host_config: dict[str, Any] = {"binds": binds, "privileged": privileged}
        try:
            if svc.get("memory_limit"):
                host_config["mem_limit"] = memory_bytes(svc["memory_limit"], f"services[{i}].memory_limit")
            if svc.get("cpu_limit"):
                host_config["nano_cpus"] = cpu_nano(svc["cpu_limit"], f"services[{i}].cpu_limit")
        except QuantityError as exc:
            raise _Fail(ERR_VALIDATION, str(exc)) from None
        networking = None
        if network_mode:
            host_config["network_mode"] = network_mode
        if self.network:
            aliases = [a for a in (as_str(svc.get("name")), as_str(svc.get("alias"))) if a]
            networking = self.api.create_networking_config(
                {self.network: self.api.create_endpoint_config(aliases=aliases)}
            )
        entrypoint, command = svc.get("entrypoint"), svc.get("command")
        created = self.api.create_container(
            as_str(svc["image"]),
            command=command or None,
            entrypoint=entrypoint or None,
            environment=svc_env,
            labels=self._labels("service"),
            name=f"{self.prefix}-{re.sub(r'[^A-Za-z0-9_.-]', '-', name)}",
            host_config=self.api.create_host_config(**host_config),
            networking_config=networking,
        )
        self.containers.append(created["Id"])
        self.api.start(created["Id"])
        self.emit("system", f"service {name} started from {svc['image']}")

    def _workdir_tar(self) -> bytes:
        buf = io.BytesIO()
        base = self.wd.lstrip("/")
        with tarfile.open(fileobj=buf, mode="w") as tar:
            parts = base.split("/") if base else []
            for n in range(1, len(parts) + 1):  # the working dir and its parents
                info = tarfile.TarInfo("/".join(parts[:n]))
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
                tar.addfile(info)
            for child in sorted(self.host_cwd.iterdir()):
                tar.add(str(child), arcname=f"{base}/{child.name}" if base else child.name)
            info = tarfile.TarInfo(CONTEXT_DIR.lstrip("/"))
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o1777, int(time.time())
            tar.addfile(info)
        return buf.getvalue()

    # -- commands ------------------------------------------------------------------------------
    def _commands(self) -> ExecutionResult:
        result = ExecutionResult(status=STATUS_COMPLETED, exit_code="0")
        for cmd in as_list(self.spec.get("before_script")) + as_list(self.spec.get("script")):
            code, why = self._exec(cmd, self.deadline)
            if why == "cancelled":
                self._kill_container()
                self.emit("system", "task cancelled")
                return ExecutionResult(
                    status=STATUS_CANCELLED,
                    exit_code=str(code) if code is not None else None,
                    exit_message="task cancelled",
                    failed_command=self.redact(cmd),
                )
            if why == "timeout":
                msg = (
                    f"task timed out after {self.req.timeout_secs:g}s"
                    if self.req.timeout_secs
                    else "task timed out"
                )
                self.emit("system", msg)
                result = ExecutionResult(
                    status=STATUS_FAILED,
                    exit_code=str(code) if code is not None else "137",
                    exit_message=msg,
                    error_code=ERR_TASK_TIMEOUT,
                    error_message=msg,
                    failed_command=self.redact(cmd),
                )
                break
            if code != 0:
                msg = f"command exited with code {code}"
                error_code = ""
                # the kernel does not always record an OOM kill of an exec'd process where we can
                # read it: a SIGKILL nobody here sent, under a memory limit, is the OOM killer
                if code == 137 and (self._oom_killed() or self.memory_limited):
                    msg = "command was killed: out of memory (container.memory_limit exceeded)"
                    error_code = ERR_OOM
                    self.emit("system", msg)
                result = ExecutionResult(
                    status=STATUS_FAILED,
                    exit_code=str(code),
                    exit_message=msg,
                    error_code=error_code,
                    error_message=msg,
                    failed_command=self.redact(cmd),
                )
                break
        self._after_script(result)
        return result

    def _after_script(self, result: ExecutionResult) -> None:
        commands = as_list(self.spec.get("after_script"))
        if not commands:
            return
        try:
            budget = float(self.spec.get("after_script_timeout_secs", DEFAULT_AFTER_SCRIPT_TIMEOUT_SECS))
        except (TypeError, ValueError):
            budget = DEFAULT_AFTER_SCRIPT_TIMEOUT_SECS
        deadline = time.monotonic() + budget
        for cmd in commands:
            code, why = self._exec(cmd, deadline)
            if why == "cancelled":
                self._kill_container()
            if why or code != 0:
                what = why or "failed"
                warning = f"after_script {what} (exit code {code}); ignored"
                self.emit("system", warning)
                result.warnings.append(warning)
                return

    def _exec(self, cmd: str, deadline: float | None) -> tuple[int | None, str]:
        """Run one command; returns (exit status, "" | "timeout" | "cancelled")."""
        self.emit("system", f"$ {cmd}")
        if self.ctx.cancel_event.is_set():
            return None, "cancelled"
        if deadline is not None and time.monotonic() >= deadline:
            return None, "timeout"
        exec_id = self.api.exec_create(
            self.main, ["/bin/sh", "-c", cmd], workdir=self.wd, stdin=False, tty=False
        )["Id"]
        # demuxed: each chunk is (stdout bytes | None, stderr bytes | None)
        stream = self.api.exec_start(exec_id, stream=True, demux=True)
        done = threading.Event()
        splitters = {"stdout": LineSplitter(), "stderr": LineSplitter()}

        def reader() -> None:
            try:
                for out, err in stream:
                    for name, chunk in (("stdout", out), ("stderr", err)):
                        for line in splitters[name].feed(chunk) if chunk else ():
                            self.emit(name, line)
            except Exception:  # the stream was closed under us, or the engine went away
                pass
            finally:
                for name, splitter in splitters.items():
                    for line in splitter.flush():
                        self.emit(name, line)
                done.set()

        thread = threading.Thread(target=reader, name=f"docker-exec-{exec_id[:8]}", daemon=True)
        thread.start()
        why = ""
        exited_at: float | None = None
        next_inspect = time.monotonic() + INSPECT_EVERY_SECS
        while not done.wait(TICK_SECS):
            now = time.monotonic()
            if self.ctx.cancel_event.is_set():
                why = "cancelled"
                self._kill_container()
                break
            if deadline is not None and now >= deadline:
                why = "timeout"
                self._kill_task_processes()
                break
            if now >= next_inspect:
                next_inspect = now + INSPECT_EVERY_SECS
                if exited_at is None and not self.api.exec_inspect(exec_id).get("Running"):
                    exited_at = now
            if exited_at is not None and now - exited_at >= ORPHAN_GRACE_SECS:
                break  # a background process keeps the output open; the command is done
        if not done.wait(1.0):
            with contextlib.suppress(Exception):
                stream.close()
            done.wait(1.0)
        code = None
        for _ in range(50):
            try:
                info = self.api.exec_inspect(exec_id)
            except Exception:
                info = {}
            if not info.get("Running"):
                code = info.get("ExitCode")
                break
            time.sleep(TICK_SECS)
        return code, why

    def _kill_task_processes(self) -> None:
        """Kill every process of the task but PID 1, so after_script can still run."""
        try:
            exec_id = self.api.exec_create(self.main, ["/bin/sh", "-c", "kill -9 -1"], user="root")["Id"]
            self.api.exec_start(exec_id)
        except Exception:
            self._kill_container()

    def _kill_container(self) -> None:
        with contextlib.suppress(Exception):
            self.api.kill(self.main)

    def _oom_killed(self) -> bool:
        with contextlib.suppress(Exception):
            if self.api.inspect_container(self.main)["State"].get("OOMKilled"):
                return True
        with contextlib.suppress(Exception):
            exec_id = self.api.exec_create(
                self.main,
                [
                    "/bin/sh",
                    "-c",
                    "cat /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control",
                ],
                user="root",
            )["Id"]
            text = self.api.exec_start(exec_id).decode("utf-8", "replace")
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                    return True
        return False

    # -- files out -----------------------------------------------------------------------------
    def _declared_paths(self) -> list[str] | None:
        """Paths to copy back, or None for the whole working dir."""
        if as_str(self.settings.get("copy_back") or "declared") == "all":
            return None
        paths: list[str] = []
        for key in ("artifacts", "cache"):
            for p in as_dict(self.spec.get(key)).get("paths") or []:
                text = as_str(p).strip()
                if not text:
                    continue
                if set(text) & GLOB_CHARS:
                    return None
                paths.append(text)
        return paths

    def _copy_back(self) -> None:
        docker = _docker()
        paths = self._declared_paths()
        if paths is None:
            self._fetch(self.wd, self.host_cwd, whole=True)
            return
        for rel in paths:
            clean = os.path.normpath(rel.lstrip("/"))
            if clean.startswith(".."):
                self.warnings.append(f"artifact path {rel!r} is outside the working directory; not copied")
                continue
            target = (self.host_cwd / clean).parent
            try:
                self._fetch(f"{self.wd.rstrip('/')}/{clean}", target, whole=False)
            except docker.errors.NotFound:
                continue  # not produced: the artifact step reports missing paths

    def _fetch(self, container_path: str, host_dir: Path, whole: bool) -> None:
        stream, _stat = self.api.get_archive(self.main, container_path)
        with tempfile.TemporaryDirectory(prefix="formicary-docker-") as tmp:
            spool = Path(tmp) / "archive.tar"
            with open(spool, "wb") as fh:
                for chunk in stream:
                    fh.write(chunk)
            out = Path(tmp) / "out"
            out.mkdir()
            with tarfile.open(spool) as tar:
                tar.extractall(out, filter="data")
            host_dir.mkdir(parents=True, exist_ok=True)
            if whole:  # the archive holds the working dir itself: take its contents
                (top,) = list(out.iterdir()) or [out]
                shutil.copytree(top, host_dir, dirs_exist_ok=True, symlinks=True)
            else:
                for item in out.iterdir():
                    dest = host_dir / item.name
                    if dest.is_dir() and not dest.is_symlink() and item.is_dir():
                        shutil.copytree(item, dest, dirs_exist_ok=True, symlinks=True)
                    else:
                        if dest.is_dir() and not dest.is_symlink():
                            shutil.rmtree(dest)
                        shutil.move(str(item), str(dest))

    def _read_context(self) -> dict[str, str]:
        docker = _docker()
        try:
            stream, _stat = self.api.get_archive(self.main, CONTEXT_FILE)
        except docker.errors.NotFound:
            return {}
        data = b"".join(stream)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            if member is None:
                return {}
            fh = tar.extractfile(member)
            text = fh.read(1024 * 1024).decode("utf-8", "replace") if fh else ""
        return parse_dotenv(text)

    # -- cleanup -------------------------------------------------------------------------------
    def _cleanup(self) -> None:
        api = getattr(self, "api", None)
        if api is None:
            return
        for cid in reversed(self.containers):
            try:
                api.remove_container(cid, force=True, v=True)
            except Exception as exc:
                self.warnings.append(f"cannot remove container {cid[:12]}: {exc}")
        if self.network:
            try:
                api.remove_network(self.network)
            except Exception as exc:
                self.warnings.append(f"cannot remove network {self.network}: {exc}")
        for vol in self.volumes:
            try:
                api.remove_volume(vol, force=True)
            except Exception as exc:
                self.warnings.append(f"cannot remove volume {vol}: {exc}")


class _Cancelled(_Fail):
    def __init__(self) -> None:
        super().__init__("", "task cancelled")


def _split_image(image: str) -> tuple[str, str]:
    if "@" in image:
        return image, ""
    name, _, tag = image.rpartition(":")
    if name and "/" not in tag:
        return name, tag
    return image, "latest"
