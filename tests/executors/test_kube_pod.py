"""Pod manifests built by ``kube_pod.build_pod`` for every reference example, field by field
(the reference's definitions come from FORMICARY_REFERENCE_EXAMPLES; without it those tests skip).

Pure code, no server. ``summary`` drops only the environment (checked separately) and the
formicary bookkeeping labels; everything else is compared exactly.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from ants.containers import QuantityError, cpu_nano, memory_bytes, parse_quantity
from ants.executors.kube_pod import PodSpecError, build_pod, dns_name, pod_name
from ants.protocol import TaskRequest
from jobs.definition.parser import load_definition
from tests.conftest import reference_paths, reference_text

CTX_MOUNT = {"name": "formicary-context", "mountPath": "/.formicary"}
CTX_VOLUME = {"name": "formicary-context", "emptyDir": {}}


def task_request(example: str, task_type: str, **kw: Any) -> TaskRequest:
    spec = load_definition(reference_text(example))
    task = spec.task(task_type)
    assert task is not None
    return TaskRequest(
        task_execution_id=11, job_request_id=22, job_type=spec.job_type, task_type=task_type,
        organization_id="7", spec=task.to_dict(), **kw,
    )  # fmt: skip


def pod_for(example: str, task_type: str, config: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return build_pod(
        task_request(example, task_type, **kw), config or {"namespace": "ns"}, ant_id="ant-1", script="S"
    )


def summary(pod: dict[str, Any]) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    for c in pod["spec"]["containers"]:
        c.pop("env")
    pod["metadata"]["labels"] = {
        k: v for k, v in pod["metadata"]["labels"].items() if not k.startswith("formicary.io/")
    }
    return pod


def simple(
    image: str, working_dir: str = "/workspace", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"labels": labels or {}, "annotations": {}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 10,
            "containers": [
                {"name": "task", "image": image, "command": ["/bin/sh", "-c", "S"], "workingDir": working_dir,
                 "volumeMounts": [CTX_MOUNT]}
            ],
            "volumes": [CTX_VOLUME],
        },
    }  # fmt: skip


def check(pod: dict[str, Any], expected: dict[str, Any]) -> None:
    got = summary(pod)
    assert got["apiVersion"] == "v1" and got["kind"] == "Pod"
    assert got["metadata"]["namespace"] == "ns"
    assert got["metadata"]["name"] == dns_name(
        f"formicary-11-1-{pod['metadata']['labels']['formicary.io/task-type']}"
    )
    assert got["metadata"]["labels"] == expected["metadata"]["labels"]
    assert got["metadata"]["annotations"] == expected["metadata"]["annotations"]
    assert set(got["spec"]) == set(expected["spec"])
    for key, value in expected["spec"].items():
        if key == "containers":
            assert len(got["spec"]["containers"]) == len(value)
            for gc, ec in zip(got["spec"]["containers"], value, strict=True):
                assert gc == ec
        else:
            assert got["spec"][key] == value, key


SIMPLE = {
    "etl-stock-job": {"extract": "python:3.8-buster", "transform": "alpine", "load": "alpine"},
    "stock-plugin": {"extract": "python:3.8-buster", "transform": "alpine", "load": "alpine"},
    "parallel-video-encoding": {
        "validate": "alpine", "download": "python:3.8-buster", "split": "alpine", "combine": "alpine",
    },
    "video-encoding": {"validate": "alpine", "download": "python:3.8-buster", "encode": "alpine"},
    "sensor-job": {"second": "alpine", "third": "alpine"},
    "taco-job": {
        "allocate": "alpine", "check-date": "alpine", "monday": "alpine", "tuesday": "alpine",
        "taco-tuesday": "alpine", "friday": "alpine", "party": "alpine", "deallocate": "alpine",
    },
}  # fmt: skip


@pytest.mark.parametrize(
    ("example", "task_type"), [(e, t) for e, tasks in SIMPLE.items() for t in tasks], ids=lambda v: str(v)
)
def test_simple_container_examples(example: str, task_type: str) -> None:
    check(pod_for(example, task_type), simple(SIMPLE[example][task_type]))


def test_every_container_task_of_every_example_is_covered() -> None:
    covered = {(e, t) for e, tasks in SIMPLE.items() for t in tasks}
    covered |= {("kube-example1", "k8-task"), ("kube-example2", "kubby"), ("dind-tls-job", "build"),
                ("trivy-scan-job", "scan"), ("go-build-ci", "build"), ("go-build-ci", "test"),
                ("go-build-ci", "deploy")}  # fmt: skip
    found = set()
    for path in reference_paths():
        for task in load_definition(path.read_text()).tasks:
            if task.container:
                found.add((path.stem, task.task_type))
    assert found == covered


def test_kube_example1_volumes_services_and_labels() -> None:
    expected = {
        "metadata": {"labels": {"foor": "bar"}, "annotations": {}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 10,
            "containers": [
                {
                    "name": "task", "image": "ubuntu:16.04", "command": ["/bin/sh", "-c", "S"],
                    "workingDir": "/workspace",
                    "volumeMounts": [
                        {"name": "mount1", "mountPath": "/myshared"},
                        {"name": "mount2", "mountPath": "/myempty"},
                        {"name": "oidc-token", "mountPath": "/var/run/sigstore/cosign"},
                        CTX_MOUNT,
                    ],
                },
                {"name": "redis", "image": "redis:6.2.2-alpine", "ports": [{"containerPort": 6379}]},
            ],
            "volumes": [
                {"name": "mount1", "hostPath": {"path": "/shared"}},
                {"name": "mount2", "emptyDir": {}},
                {"name": "oidc-token", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "oidc-token", "expirationSeconds": 600, "audience": "sigstore"}}
                ]}},
                CTX_VOLUME,
            ],
            "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["redis"]}],
        },
    }  # fmt: skip
    pod = pod_for("kube-example1", "k8-task")
    check(pod, expected)
    assert "hostNetwork" not in pod["spec"]  # host_network: false


def test_kube_example2_resources() -> None:
    expected = simple("ubuntu:16.04", labels={"foor": "bar"})
    expected["spec"]["containers"][0]["resources"] = {
        "limits": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "2Gi"},
        "requests": {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "1Gi"},
    }
    # key order of the container: resources come before volumeMounts
    c = expected["spec"]["containers"][0]
    c["volumeMounts"] = c.pop("volumeMounts")
    check(pod_for("kube-example2", "kubby"), expected)


def _dind(working_dir: str, certs: bool) -> dict[str, Any]:
    mounts = [{"name": "certs", "mountPath": "/mycerts/client"}] if certs else []
    return {
        "metadata": {"labels": {}, "annotations": {}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 10,
            "containers": [
                {
                    "name": "task", "image": "docker:20.10-git", "command": ["/bin/sh", "-c", "S"],
                    "workingDir": working_dir, "volumeMounts": mounts + [CTX_MOUNT],
                    "securityContext": {"privileged": True},
                },
                {
                    "name": "docker-dind", "image": "docker:20.10-dind",
                    "command": ["env", "-u", "DOCKER_HOST"], "args": ["dockerd-entrypoint.sh"],
                    **({"volumeMounts": mounts} if certs else {}),
                    "securityContext": {"privileged": True},
                },
            ],
            "volumes": ([{"name": "certs", "emptyDir": {}}] if certs else []) + [CTX_VOLUME],
            "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["docker-dind", "docker"]}],
        },
    }  # fmt: skip


def test_dind_tls_job_shares_the_certs_volume_with_the_service() -> None:
    pod = pod_for("dind-tls-job", "build")
    check(pod, _dind("/sample", certs=True))
    main_env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    svc_env = {e["name"]: e["value"] for e in pod["spec"]["containers"][1]["env"]}
    assert main_env["DOCKER_HOST"] == "tcp://localhost:2376" and main_env["DOCKER_TLS_CERTDIR"] == "/mycerts"
    assert svc_env["DOCKER_TLS_CERTDIR"] == "/mycerts"  # the service sees the task variables too


def test_trivy_scan_job() -> None:
    pod = pod_for("trivy-scan-job", "scan")
    check(pod, _dind("/trivy-ci-test", certs=False))
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["DOCKER_HOST"] == "tcp://localhost:2375" and env["DOCKER_TLS_CERTDIR"] == ""


@pytest.mark.parametrize("task_type", ["build", "test", "deploy"])
def test_go_build_ci_environment_and_working_dir(task_type: str) -> None:
    pod = pod_for("go-build-ci", task_type)
    check(pod, simple("golang:1.16-buster", working_dir="/sample"))
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    if task_type == "test":
        assert env["GO111MODULE"] == "on" and env["CGO_ENABLED"] == "0"
    assert env["FORMICARY_TASK_TYPE"] == task_type and env["FORMICARY_WORKDIR"] == "/sample"
    assert env["FORMICARY_CONTEXT_FILE"] == "/.formicary/context.env"


def test_bookkeeping_labels_and_name() -> None:
    pod = pod_for("taco-job", "taco-tuesday")
    assert pod["metadata"]["name"] == "formicary-11-1-taco-tuesday"
    assert {k: v for k, v in pod["metadata"]["labels"].items() if k.startswith("formicary.io/")} == {
        "formicary.io/managed-by": "formicary",
        "formicary.io/ant-id": "ant-1",
        "formicary.io/task-execution-id": "11",
        "formicary.io/attempt": "1",
        "formicary.io/job-request-id": "22",
        "formicary.io/organization-id": "7",
        "formicary.io/task-type": "taco-tuesday",
        "formicary.io/role": "main",
    }


def test_pods_are_valid_kubernetes_objects() -> None:
    from kubernetes import client

    api = client.ApiClient()
    for example, task in [
        ("kube-example1", "k8-task"),
        ("kube-example2", "kubby"),
        ("dind-tls-job", "build"),
    ]:
        pod = pod_for(example, task)
        obj = api._ApiClient__deserialize(pod, "V1Pod")  # the client's own decoder
        assert obj.metadata.name == pod["metadata"]["name"]
        assert (
            api.sanitize_for_serialization(obj)["spec"]["containers"][0]["image"]
            == pod["spec"]["containers"][0]["image"]
        )


# -- the remaining options, on a hand-written task --------------------------------------------------


def custom(**spec: Any) -> TaskRequest:
    spec.setdefault("container", {"image": "alpine"})
    return TaskRequest(
        task_execution_id=5, job_request_id=6, task_type="Custom_Task", spec=spec, timeout_secs=90
    )


def test_scheduling_options() -> None:
    pod = build_pod(
        custom(
            pod_annotations={"a/b": "c"},
            node_selector={"disk": "ssd"},
            tolerations={"dedicated=builds": "NoSchedule", "gpu": "NoExecute", "spot": ""},
            affinity={"required_during_scheduling_ignored_during_execution": {"node_selector_terms": [
                {"match_expressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}
            ]}},
            host_network=True,
            service_account="builder",
        ),
        {"namespace": "ns", "image_pull_secrets": ["regcred"], "node_selector": {"pool": "ci"},
         "labels": {"team": "x"}, "annotations": {"ant": "1"}},
        script="S",
    )  # fmt: skip
    spec = pod["spec"]
    assert pod["metadata"]["name"] == "formicary-5-1-custom-task"
    assert pod["metadata"]["annotations"] == {"ant": "1", "a/b": "c"}
    assert pod["metadata"]["labels"]["team"] == "x"
    assert spec["nodeSelector"] == {"pool": "ci", "disk": "ssd"}
    assert spec["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "builds", "effect": "NoSchedule"},
        {"key": "gpu", "operator": "Exists", "effect": "NoExecute"},
        {"key": "spot", "operator": "Exists"},
    ]
    assert spec["affinity"] == {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]
    }}}  # fmt: skip
    assert spec["hostNetwork"] is True
    assert spec["serviceAccountName"] == "builder"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["activeDeadlineSeconds"] == 150


def test_full_affinity_passes_through_with_label_maps_kept() -> None:
    aff = {"pod_anti_affinity": {"preferred_during_scheduling_ignored_during_execution": [
        {"weight": 1, "pod_affinity_term": {"topology_key": "kubernetes.io/hostname",
                                            "label_selector": {"match_labels": {"app_name": "x"}}}}]}}  # fmt: skip
    pod = build_pod(custom(affinity=aff), {}, script="S")
    term = pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"] == {"topologyKey": "kubernetes.io/hostname",
                                       "labelSelector": {"matchLabels": {"app_name": "x"}}}  # fmt: skip


def test_every_volume_kind() -> None:
    volumes = {
        "pvc": [{"name": "data", "mount_path": "/data", "claim_name": "claim-1", "read_only": True}],
        "config_map": [{"name": "cfg", "mount_path": "/cfg", "items": {"app.yaml": "app.yaml"}}],
        "secret": [{"name": "creds", "mount_path": "/creds", "secret_name": "db-creds", "sub_path": "pw"}],
        "empty_dir": [{"name": "mem", "mount_path": "/mem", "medium": "Memory", "size_limit": "64Mi"}],
        "host_path": [{"name": "sock", "mount_path": "/var/run/docker.sock", "host_path": "/var/run/docker.sock"}],
        "projected": [{"name": "proj", "mount_path": "/proj", "sources": [
            {"config_map": {"name": "cm", "items": [{"key": "k", "path": "p"}]}},
            {"secret": {"name": "s"}},
        ]}],
    }  # fmt: skip
    pod = build_pod(custom(container={"image": "alpine", "volumes": volumes}), {}, script="S")
    assert pod["spec"]["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "claim-1", "readOnly": True}},
        {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "app.yaml", "path": "app.yaml"}]}},
        {"name": "creds", "secret": {"secretName": "db-creds"}},
        {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        {"name": "sock", "hostPath": {"path": "/var/run/docker.sock"}},
        {"name": "proj", "projected": {"sources": [
            {"configMap": {"name": "cm", "items": [{"key": "k", "path": "p"}]}}, {"secret": {"name": "s"}},
        ]}},
        CTX_VOLUME,
    ]  # fmt: skip
    assert pod["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "data", "mountPath": "/data", "readOnly": True},
        {"name": "cfg", "mountPath": "/cfg"},
        {"name": "creds", "mountPath": "/creds", "subPath": "pw"},
        {"name": "mem", "mountPath": "/mem"},
        {"name": "sock", "mountPath": "/var/run/docker.sock"},
        {"name": "proj", "mountPath": "/proj"},
        CTX_MOUNT,
    ]


def test_ant_defaults_pull_policy_and_limits() -> None:
    cfg = {"pull_policy": "always", "default_resources": {"cpu_limit": "2", "memory_request": "128Mi"},
           "service_account": "default-sa", "volumes": {"host_path": [{"name": "cache", "mount_path": "/cache",
                                                                         "host_path": "/var/cache/ci"}]}}  # fmt: skip
    pod = build_pod(
        custom(container={"image": "alpine", "image_pull_policy": "if_not_present"}), cfg, script="S"
    )
    main = pod["spec"]["containers"][0]
    assert main["imagePullPolicy"] == "IfNotPresent"
    assert main["resources"] == {"limits": {"cpu": "2"}, "requests": {"memory": "128Mi"}}
    assert main["volumeMounts"][0] == {"name": "cache", "mountPath": "/cache"}
    assert pod["spec"]["serviceAccountName"] == "default-sa"
    pod = build_pod(custom(), cfg, script="S")
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Always"


@pytest.mark.parametrize(
    ("spec", "config", "message"),
    [
        ({"container": {}}, {}, "container.image is required"),
        ({"container": {"image": "a", "cpu_limit": "fast"}}, {}, "container.cpu_limit"),
        (
            {"container": {"image": "a", "memory_limit": "8Gi"}},
            {"max_resources": {"memory_limit": "4Gi"}},
            "exceeds",
        ),
        ({"privileged": True}, {"allow_privileged": False}, "privileged"),
        (
            {"container": {"image": "a", "volumes": {"nfs": [{"name": "x", "mount_path": "/x"}]}}},
            {},
            "unknown volume",
        ),
        ({"container": {"image": "a", "volumes": {"host_path": [{"name": "x"}]}}}, {}, "mount_path"),
        ({"services": [{"name": "db"}]}, {}, "services[0].image"),
        ({"services": [{"name": "task", "image": "x"}]}, {}, "used twice"),
        ({"container": {"image": "a", "image_pull_policy": "sometimes"}}, {}, "image_pull_policy"),
        ({"working_dir": "/a/../b"}, {}, ".."),
    ],
)
def test_invalid_specs_name_the_field(spec: dict[str, Any], config: dict[str, Any], message: str) -> None:
    with pytest.raises(PodSpecError) as info:
        build_pod(custom(**spec), config, script="S")
    assert message in str(info.value)


def test_pod_name_is_a_dns_label() -> None:
    req = TaskRequest(task_execution_id=1, job_request_id=1, task_type="A_Very.Long Task " * 10)
    name = pod_name(req)
    assert len(name) <= 63 and name == name.lower() and name[0].isalnum() and name[-1].isalnum()


@pytest.mark.parametrize(
    ("text", "value"),
    [("2Gi", Decimal(2 * 1024**3)), ("500m", Decimal("0.5")), ("1", Decimal(1)), ("1.5", Decimal("1.5")),
     ("128M", Decimal(128 * 10**6)), ("1e3", Decimal(1000)), (2, Decimal(2))],
)  # fmt: skip
def test_quantities(text: Any, value: Decimal) -> None:
    assert parse_quantity(text) == value


def test_quantity_helpers_and_errors() -> None:
    assert memory_bytes("64Mi") == 64 * 1024 * 1024
    assert cpu_nano("500m") == 500_000_000 and cpu_nano("2") == 2_000_000_000
    for bad in ("", "abc", "1Xi", "-1", None, True):
        with pytest.raises(QuantityError):
            parse_quantity(bad)
    with pytest.raises(QuantityError):
        memory_bytes("0")
