"""Pure pod building for the KUBERNETES executor: task spec + ant config -> a Pod manifest.

No server and no client objects are involved: ``build_pod`` returns the Pod as a plain dict in
the Kubernetes JSON shape (camelCase keys), which ``kubernetes.client.CoreV1Api`` accepts as a
request body unchanged. Everything here is deterministic, so tests compare whole manifests.

What goes where (keys of the task definition, as in the reference system):

- ``container``: image, cpu/memory/ephemeral-storage ``*_limit`` / ``*_request`` (Kubernetes
  quantities), ``volumes`` (``host_path``, ``pvc``, ``config_map``, ``secret``, ``empty_dir``,
  ``projected``), ``working_dir``; ``image_pull_policy`` overrides the ant's ``pull_policy``.
- ``services``: extra containers of the same pod (same network namespace, so ``localhost``
  reaches them); ``name`` and ``alias`` also resolve to 127.0.0.1 through ``hostAliases``.
  Each service may have image, entrypoint (-> command), command (-> args), ports
  (``number``), environment, volumes (volumes of the same name are shared with the main
  container, e.g. the dind certificates) and the resource keys.
- ``pod_labels``, ``pod_annotations``, ``node_selector``, ``tolerations`` / ``node_tolerations``
  (``{"key=value": "NoSchedule", "key": "NoExecute"}`` like the reference: ``=`` means
  operator Equal, otherwise Exists), ``affinity`` (a full Kubernetes affinity in snake_case or
  camelCase, or the reference's node-affinity shorthand with
  ``required_during_scheduling_ignored_during_execution`` / ``preferred_...`` at the top),
  ``privileged``, ``host_network``, ``service_account``.
- The main container runs the task's script (``ants.containers.step_script``) as
  ``/bin/sh -c <script>``; ``restartPolicy`` is Never.

Ant configuration (``AntConfig.kubernetes``), all optional: ``namespace`` (default
``default``), ``pull_policy`` (``if_not_present`` | ``always`` | ``never`` or the Kubernetes
spelling), ``image_pull_secrets`` (names), ``service_account`` (default when the task names
none), ``allow_privileged`` (default true; false rejects privileged tasks), ``volumes`` (added
to every main container), ``labels`` / ``annotations`` (added to every pod), ``node_selector``,
``default_resources`` (``cpu_limit``, ``memory_request``... used when the task gives none),
``max_resources`` (limits a task may not exceed), ``termination_grace_secs`` (default 10),
``deadline_slack_secs`` (default 60: ``activeDeadlineSeconds`` = task timeout + this).
"""

from __future__ import annotations

import math
import re
from typing import Any

from ants.containers import (
    CONTEXT_DIR,
    QuantityError,
    container_working_dir,
    parse_quantity,
    task_environment,
    task_labels,
)
from ants.executors.base import as_dict, as_str
from ants.protocol import TaskRequest

MAIN_CONTAINER = "task"
CONTEXT_VOLUME = "formicary-context"  # an emptyDir at CONTEXT_DIR: FORMICARY_CONTEXT_FILE is writable
RESOURCE_KEYS = {
    "cpu": "cpu",
    "memory": "memory",
    "ephemeral_storage": "ephemeral-storage",
}
PULL_POLICIES = {
    "always": "Always",
    "if_not_present": "IfNotPresent",
    "ifnotpresent": "IfNotPresent",
    "never": "Never",
}
_DNS_RE = re.compile(r"[^a-z0-9-]+")
_LABEL_VALUE_RE = re.compile(r"[^A-Za-z0-9_.\-]+")


class PodSpecError(ValueError):
    """The task asks for something that cannot become a valid pod (message names the field)."""


def dns_name(text: str, limit: int = 63) -> str:
    """A DNS-1123 label: lower-case letters, digits and '-', starting and ending alphanumeric."""
    name = _DNS_RE.sub("-", text.lower()).strip("-")[:limit].strip("-")
    return name or "x"


def label_value(text: str) -> str:
    return _LABEL_VALUE_RE.sub("-", text)[:63].strip("-_.")


def pod_name(req: TaskRequest) -> str:
    return dns_name(f"formicary-{req.task_execution_id}-{req.attempt}-{req.task_type}")


def camel(key: str) -> str:
    if "_" not in key:
        return key
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest if p)


_VERBATIM_KEYS = {"matchLabels", "match_labels", "nodeSelector", "node_selector"}


def camelize(value: Any) -> Any:
    """snake_case keys -> camelCase, recursively (label maps are kept as written)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out[camel(str(k))] = dict(v) if str(k) in _VERBATIM_KEYS and isinstance(v, dict) else camelize(v)
        return out
    if isinstance(value, list):
        return [camelize(v) for v in value]
    return value


# -- resources ----------------------------------------------------------------------------------


def resources(
    source: dict[str, Any],
    where: str,
    defaults: dict[str, Any] | None = None,
    maximum: dict[str, Any] | None = None,
) -> dict[str, dict[str, str]]:
    """``{"limits": {...}, "requests": {...}}`` from ``cpu_limit``-style keys (empty parts left out)."""
    out: dict[str, dict[str, str]] = {}
    for kind, bucket in (("limit", "limits"), ("request", "requests")):
        for key, k8s_name in RESOURCE_KEYS.items():
            name = f"{key}_{kind}"
            value = source.get(name)
            if value in (None, "") and defaults:
                value = defaults.get(name)
            if value in (None, ""):
                continue
            text = as_str(value).strip()
            try:
                amount = parse_quantity(text, f"{where}.{name}")
            except QuantityError as exc:
                raise PodSpecError(str(exc)) from None
            cap = (maximum or {}).get(f"{key}_limit")
            if cap not in (None, "") and amount > parse_quantity(cap, f"max_resources.{key}_limit"):
                raise PodSpecError(f"{where}.{name}: {text} exceeds the ant's maximum {cap}")
            out.setdefault(bucket, {})[k8s_name] = text
    return out


# -- volumes ------------------------------------------------------------------------------------


def _items(value: Any) -> list[dict[str, str]] | None:
    """``{key: path}`` or ``[{key, path}]`` -> Kubernetes KeyToPath items."""
    if isinstance(value, dict):
        return [{"key": str(k), "path": as_str(v)} for k, v in value.items()]
    if isinstance(value, list):
        return [
            {"key": as_str(i.get("key")), "path": as_str(i.get("path"))} for i in value if isinstance(i, dict)
        ]
    return None


def _projected_source(src: dict[str, Any], where: str) -> dict[str, Any]:
    for kind in ("service_account_token", "config_map", "secret", "downward_api", "cluster_trust_bundle"):
        if kind not in src:
            continue
        body = src.get(kind)
        if not isinstance(body, dict):
            # The reference examples indent the fields beside the key: take the siblings.
            body = {k: v for k, v in src.items() if k != kind}
        if kind == "service_account_token":
            out: dict[str, Any] = {"path": as_str(body.get("path"))}
            if body.get("expiration_seconds") not in (None, ""):
                out["expirationSeconds"] = int(body["expiration_seconds"])
            if body.get("audience") not in (None, ""):
                out["audience"] = as_str(body["audience"])
            return {"serviceAccountToken": out}
        if kind in ("config_map", "secret"):
            out = {"name": as_str(body.get("name"))}
            items = _items(body.get("items"))
            if items:
                out["items"] = items
            return {camel(kind): out}
        return {camel(kind): camelize(body)}
    raise PodSpecError(f"{where}: unknown projected source {sorted(src)}")


def _volume(kind: str, entry: dict[str, Any], where: str) -> dict[str, Any]:
    name = dns_name(as_str(entry.get("name")))
    if kind == "host_path":
        path = entry.get("host_path") or entry.get("path")
        if not path:
            raise PodSpecError(f"{where}: host_path is required")
        body: dict[str, Any] = {"path": as_str(path)}
        if entry.get("type"):
            body["type"] = as_str(entry["type"])
        return {"name": name, "hostPath": body}
    if kind == "empty_dir":
        body = {}
        if entry.get("medium"):
            body["medium"] = as_str(entry["medium"])
        if entry.get("size_limit"):
            body["sizeLimit"] = as_str(entry["size_limit"])
        return {"name": name, "emptyDir": body}
    if kind == "pvc":
        body = {"claimName": as_str(entry.get("claim_name") or entry.get("name"))}
        if entry.get("read_only"):
            body["readOnly"] = True
        return {"name": name, "persistentVolumeClaim": body}
    if kind == "config_map":
        body = {"name": as_str(entry.get("config_map") or entry.get("config_map_name") or entry.get("name"))}
        items = _items(entry.get("items"))
        if items:
            body["items"] = items
        if entry.get("default_mode") is not None:
            body["defaultMode"] = int(entry["default_mode"])
        return {"name": name, "configMap": body}
    if kind == "secret":
        body = {"secretName": as_str(entry.get("secret_name") or entry.get("name"))}
        items = _items(entry.get("items"))
        if items:
            body["items"] = items
        if entry.get("default_mode") is not None:
            body["defaultMode"] = int(entry["default_mode"])
        return {"name": name, "secret": body}
    if kind == "projected":
        sources = entry.get("sources") or []
        if not isinstance(sources, list):
            raise PodSpecError(f"{where}.sources: must be a list")
        return {
            "name": name,
            "projected": {
                "sources": [_projected_source(s, f"{where}.sources[{i}]") for i, s in enumerate(sources) if s]
            },
        }
    raise PodSpecError(f"{where}: unknown volume kind {kind!r}")


VOLUME_KINDS = {
    "host_path": "host_path",
    "empty_dir": "empty_dir",
    "pvc": "pvc",
    "persistent_volume_claim": "pvc",
    "config_map": "config_map",
    "secret": "secret",
    "projected": "projected",
}


def volumes_and_mounts(spec: Any, where: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes and mounts of one container's ``volumes`` mapping."""
    vols, mounts = [], []
    for key, entries in as_dict(spec).items():
        kind = VOLUME_KINDS.get(str(key))
        if kind is None:
            raise PodSpecError(
                f"{where}: unknown volume kind {key!r} (known: {', '.join(sorted(VOLUME_KINDS))})"
            )
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise PodSpecError(f"{where}.{key}: must be a list")
        for i, entry in enumerate(entries):
            at = f"{where}.{key}[{i}]"
            if not isinstance(entry, dict) or not entry.get("name") or not entry.get("mount_path"):
                raise PodSpecError(f"{at}: name and mount_path are required")
            vol = _volume(kind, entry, at)
            vols.append(vol)
            mount: dict[str, Any] = {"name": vol["name"], "mountPath": as_str(entry["mount_path"])}
            if entry.get("sub_path"):
                mount["subPath"] = as_str(entry["sub_path"])
            if entry.get("read_only"):
                mount["readOnly"] = True
            mounts.append(mount)
    return vols, mounts


# -- scheduling ---------------------------------------------------------------------------------


def tolerations(value: Any) -> list[dict[str, str]]:
    out = []
    for key, effect in sorted(as_dict(value).items()):
        key = str(key)
        tol: dict[str, str]
        if "=" in key:
            k, _, v = key.partition("=")
            tol = {"key": k, "operator": "Equal", "value": v}
        else:
            tol = {"key": key, "operator": "Exists"}
        if effect not in (None, ""):
            tol["effect"] = as_str(effect)
        out.append(tol)
    return out


_NODE_AFFINITY_SHORT = {
    "required_during_scheduling_ignored_during_execution",
    "preferred_during_scheduling_ignored_during_execution",
    "requiredDuringSchedulingIgnoredDuringExecution",
    "preferredDuringSchedulingIgnoredDuringExecution",
}


def affinity(value: Any) -> dict[str, Any] | None:
    data = as_dict(value)
    if not data:
        return None
    if set(data) & _NODE_AFFINITY_SHORT:
        return {"nodeAffinity": camelize(data)}
    return camelize(data)


# -- the pod ------------------------------------------------------------------------------------


def _env_list(env: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in env.items()]


def _pull_policy(value: Any, where: str) -> str | None:
    if value in (None, ""):
        return None
    text = as_str(value)
    policy = PULL_POLICIES.get(text.lower()) or (text if text in PULL_POLICIES.values() else None)
    if policy is None:
        raise PodSpecError(f"{where}: {text!r} must be always, if_not_present or never")
    return policy


def _add_volumes(pod_volumes: list[dict[str, Any]], new: list[dict[str, Any]], where: str) -> None:
    """Volumes of the same name are one volume shared by the containers that mount it."""
    known = {v["name"]: v for v in pod_volumes}
    for vol in new:
        old = known.get(vol["name"])
        if old is None:
            pod_volumes.append(vol)
            known[vol["name"]] = vol
        elif old != vol:
            raise PodSpecError(f"{where}: volume {vol['name']!r} is defined twice with different sources")


def build_pod(
    req: TaskRequest,
    config: dict[str, Any] | None = None,
    *,
    ant_id: str = "",
    script: str = "",
    name: str | None = None,
) -> dict[str, Any]:
    """The Pod manifest for one task attempt. Raises PodSpecError naming the offending field."""
    cfg = dict(config or {})
    spec = req.spec
    container_spec = as_dict(spec.get("container"))
    image = as_str(container_spec.get("image")).strip()
    if not image:
        raise PodSpecError(f"task {req.task_type}: container.image is required for KUBERNETES")
    namespace = as_str(cfg.get("namespace") or "default")
    try:
        working_dir = container_working_dir(spec)
    except ValueError as exc:
        raise PodSpecError(f"task {req.task_type}: {exc}") from None
    env = task_environment(req, working_dir)
    privileged = bool(spec.get("privileged"))
    if privileged and cfg.get("allow_privileged", True) is False:
        raise PodSpecError(f"task {req.task_type}: privileged containers are not allowed on this ant")
    default_policy = _pull_policy(cfg.get("pull_policy"), "kubernetes.pull_policy")
    defaults = as_dict(cfg.get("default_resources"))
    maximum = as_dict(cfg.get("max_resources"))

    pod_volumes: list[dict[str, Any]] = []
    ant_vols, ant_mounts = volumes_and_mounts(cfg.get("volumes"), "kubernetes.volumes")
    _add_volumes(pod_volumes, ant_vols, "kubernetes.volumes")

    # main container
    vols, mounts = volumes_and_mounts(container_spec.get("volumes"), "container.volumes")
    _add_volumes(pod_volumes, vols, "container.volumes")
    _add_volumes(pod_volumes, [{"name": CONTEXT_VOLUME, "emptyDir": {}}], "container.volumes")
    mounts.append({"name": CONTEXT_VOLUME, "mountPath": CONTEXT_DIR})
    main: dict[str, Any] = {
        "name": MAIN_CONTAINER,
        "image": image,
        "command": ["/bin/sh", "-c", script],
        "workingDir": working_dir,
        "env": _env_list(env),
    }
    policy = (
        _pull_policy(container_spec.get("image_pull_policy"), "container.image_pull_policy") or default_policy
    )
    if policy:
        main["imagePullPolicy"] = policy
    res = resources(container_spec, "container", defaults, maximum)
    if res:
        main["resources"] = res
    main["volumeMounts"] = ant_mounts + mounts
    if privileged:
        main["securityContext"] = {"privileged": True}
    containers = [main]

    # services: more containers in the same pod
    host_aliases: list[str] = []
    used = {MAIN_CONTAINER}
    for i, svc in enumerate(spec.get("services") or []):
        where = f"services[{i}]"
        if not isinstance(svc, dict):
            raise PodSpecError(f"{where}: must be a mapping")
        svc_image = as_str(svc.get("image")).strip()
        if not svc_image:
            raise PodSpecError(f"{where}.image: required")
        svc_name = dns_name(as_str(svc.get("name") or f"svc-{i}"))
        if svc_name in used:
            raise PodSpecError(f"{where}.name: {svc_name!r} is used twice")
        used.add(svc_name)
        svc_env = dict(env)
        for k, v in as_dict(svc.get("environment")).items():
            svc_env[str(k)] = as_str(v)
        container: dict[str, Any] = {"name": svc_name, "image": svc_image}
        entrypoint, command = svc.get("entrypoint"), svc.get("command")
        if entrypoint:
            container["command"] = [
                as_str(c) for c in (entrypoint if isinstance(entrypoint, list) else [entrypoint])
            ]
        if command:
            container["args"] = [as_str(c) for c in (command if isinstance(command, list) else [command])]
        container["env"] = _env_list(svc_env)
        svc_policy = (
            _pull_policy(svc.get("image_pull_policy"), f"{where}.image_pull_policy") or default_policy
        )
        if svc_policy:
            container["imagePullPolicy"] = svc_policy
        ports = []
        for p in svc.get("ports") or []:
            number: Any = p.get("number") if isinstance(p, dict) else p  # as written: int() checks it
            try:
                ports.append({"containerPort": int(number)})
            except (TypeError, ValueError):
                raise PodSpecError(f"{where}.ports: {number!r} is not a port number") from None
        if ports:
            container["ports"] = ports
        res = resources(svc, where, None, maximum)
        if res:
            container["resources"] = res
        vols, mounts = volumes_and_mounts(svc.get("volumes"), f"{where}.volumes")
        _add_volumes(pod_volumes, vols, f"{where}.volumes")
        if mounts:
            container["volumeMounts"] = mounts
        if privileged:
            container["securityContext"] = {"privileged": True}
        containers.append(container)
        for host in (svc.get("name"), svc.get("alias")):
            if host and as_str(host) not in host_aliases and as_str(host) != "localhost":
                host_aliases.append(as_str(host))

    labels = {k: label_value(v) for k, v in task_labels(req, ant_id).items()}
    labels.update({str(k): as_str(v) for k, v in as_dict(cfg.get("labels")).items()})
    labels.update({str(k): as_str(v) for k, v in as_dict(spec.get("pod_labels")).items()})
    annotations = {str(k): as_str(v) for k, v in as_dict(cfg.get("annotations")).items()}
    annotations.update({str(k): as_str(v) for k, v in as_dict(spec.get("pod_annotations")).items()})

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": containers,
        "terminationGracePeriodSeconds": int(cfg.get("termination_grace_secs", 10)),
    }
    if pod_volumes:
        pod_spec["volumes"] = pod_volumes
    if host_aliases:
        pod_spec["hostAliases"] = [{"ip": "127.0.0.1", "hostnames": host_aliases}]
    node_selector = {str(k): as_str(v) for k, v in as_dict(cfg.get("node_selector")).items()}
    node_selector.update({str(k): as_str(v) for k, v in as_dict(spec.get("node_selector")).items()})
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    tols = tolerations(spec.get("tolerations"))
    if tols:
        pod_spec["tolerations"] = tols
    aff = affinity(spec.get("affinity"))
    if aff:
        pod_spec["affinity"] = aff
    if spec.get("host_network"):
        pod_spec["hostNetwork"] = True
    account = spec.get("service_account") or cfg.get("service_account")
    if account:
        pod_spec["serviceAccountName"] = as_str(account)
    secrets = cfg.get("image_pull_secrets") or []
    if secrets:
        pod_spec["imagePullSecrets"] = [{"name": as_str(s)} for s in secrets]
    if req.timeout_secs:
        pod_spec["activeDeadlineSeconds"] = int(math.ceil(req.timeout_secs)) + int(
            cfg.get("deadline_slack_secs", 60)
        )

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name or pod_name(req),
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": pod_spec,
    }
