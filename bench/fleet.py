"""W6: a simulated fleet of ants in a few processes, to see how the queen scales with ants.

Each simulated ant speaks the real protocol over Redis (``ants.protocol`` messages on the
streams ``ants.messaging.redis_streams`` names): it registers and heartbeats every 5 s like
``manage.py ant`` (``AntRegistration`` on the registrations stream and the ants hash, staggered
over the interval), reads its tasks stream in the ``ants`` group, and answers every request at
once, as a task that does nothing: EXECUTING then COMPLETED (exit code 0), and the ack, in one
pipeline per read. Control requests (cancel, ping) are acknowledged and dropped. One process
serves many ants with one blocking XREADGROUP over all their streams.

``python -m bench.fleet --redis URL --prefix P --first I --count K`` runs ants ``sim-I`` ..
``sim-(I+K-1)`` until SIGTERM, then says each is shutting down and prints a ``RESULT`` line.
``run`` (called by ``bench.workload``) measures, per fleet size, with a fresh queen: the queen's
CPU while the fleet only heartbeats, then N zero-work single-task requests submitted at once.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HEARTBEAT_SECS = 5.0
ANTS_PER_PROCESS = 250
CONCURRENCY = 2  # each simulated ant's slots (the queen never sends more than it may run ahead)


# -- the simulated ants (their own processes; no Django) ----------------------------------------


class SimulatedAnts:
    def __init__(self, redis_url: str, prefix: str, ant_ids: list[str]) -> None:
        from ants.messaging.redis_streams import RedisStreamsTransport

        self.transport = RedisStreamsTransport(redis_url, prefix=prefix)
        self.r = self.transport.redis
        self.ant_ids = ant_ids
        self.started_at = time.time()
        self.stop = threading.Event()
        self.answered = 0
        self.received_lag: list[float] = []  # queen's send stamp -> read here, seconds
        self.executed: dict[str, int] = dict.fromkeys(ant_ids, 0)
        self.streams: dict[str, str] = {}  # stream key -> ant id
        from ants.messaging.base import TASKS_GROUP

        for ant_id in ant_ids:
            for key in (self.transport.key_tasks(ant_id), self.transport.key_control(ant_id)):
                self.streams[key] = ant_id
                try:
                    self.r.xgroup_create(key, TASKS_GROUP, id="0", mkstream=True)
                except Exception as exc:  # BUSYGROUP: left from an earlier run
                    if "BUSYGROUP" not in str(exc):
                        raise

    def registration(self, ant_id: str, shutting_down: bool = False) -> str:
        from ants.protocol import AntRegistration

        return AntRegistration(
            ant_id=ant_id, ant_topic=self.transport.key_tasks(ant_id), max_capacity=CONCURRENCY, methods=["SHELL"],
            current_load=0, total_executed=self.executed[ant_id], created_at=time.time(),
            ant_started_at=self.started_at, shutting_down=shutting_down,
        ).to_json()  # fmt: skip

    def publish(self, ant_ids: list[str], shutting_down: bool = False) -> None:
        from ants.messaging.base import REGISTRATIONS_MAXLEN
        from ants.messaging.redis_streams import FIELD

        pipe = self.r.pipeline(transaction=False)
        for ant_id in ant_ids:
            payload = self.registration(ant_id, shutting_down)
            pipe.xadd(self.transport.key_registrations, {FIELD: payload}, maxlen=REGISTRATIONS_MAXLEN,
                      approximate=True)  # fmt: skip
            pipe.hset(self.transport.key_ants, ant_id, payload)
        pipe.execute()

    def heartbeats(self) -> None:
        """Every ant every HEARTBEAT_SECS, spread over the interval in ten slices (as ants
        started at different times would be)."""
        self.publish(self.ant_ids)
        slices = [self.ant_ids[i::10] for i in range(10)]
        while not self.stop.wait(HEARTBEAT_SECS / 10):
            part = slices.pop(0)
            slices.append(part)
            if part:
                self.publish(part)

    def serve(self) -> None:
        from ants.messaging.base import TASKS_GROUP
        from ants.messaging.redis_streams import FIELD
        from ants.protocol import (
            ACTION_EXECUTE,
            STATUS_COMPLETED,
            STATUS_EXECUTING,
            TaskRequest,
            TaskResponse,
        )

        ids: dict[Any, Any] = {key: ">" for key in self.streams}
        while not self.stop.is_set():
            reply: Any = self.r.xreadgroup(TASKS_GROUP, "sim", ids, count=CONCURRENCY * 40, block=500)
            if not reply:
                continue
            now = time.time()
            pipe = self.r.pipeline(transaction=False)
            for key, entries in reply:
                key = key.decode() if isinstance(key, bytes) else key
                ant_id = self.streams[key]
                for entry_id, fields in entries:
                    pipe.xack(key, TASKS_GROUP, entry_id)
                    pipe.xdel(key, entry_id)
                    req = TaskRequest.from_json(fields[FIELD])
                    if req.action != ACTION_EXECUTE:
                        continue
                    self.received_lag.append(now - req.created_at)
                    for status in (STATUS_EXECUTING, STATUS_COMPLETED):
                        fields_out: dict[str, Any] = {"started_at": now}
                        if status == STATUS_COMPLETED:
                            fields_out.update(exit_code="0", ended_at=time.time())
                        resp = TaskResponse.answering(req, ant_id, status, **fields_out)
                        pipe.xadd(self.transport.key_responses, {FIELD: resp.to_json()})
                    self.executed[ant_id] += 1
                    self.answered += 1
            pipe.execute()

    def run(self) -> dict[str, Any]:
        beat = threading.Thread(target=self.heartbeats, daemon=True)
        beat.start()
        self.serve()
        beat.join(timeout=10)
        self.publish(self.ant_ids, shutting_down=True)
        self.r.hdel(self.transport.key_ants, *self.ant_ids)
        lag = sorted(self.received_lag)
        return {"ants": len(self.ant_ids), "answered": self.answered,
                "lag_ms": [v * 1000 for v in lag[:: max(1, len(lag) // 2000)]]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--tag", default="sim")
    args = parser.parse_args()
    ants = SimulatedAnts(
        args.redis, args.prefix, [f"{args.tag}-{i}" for i in range(args.first, args.first + args.count)]
    )
    signal.signal(signal.SIGTERM, lambda *_: ants.stop.set())
    print("READY", flush=True)
    result = ants.run()
    print("RESULT " + json.dumps(result), flush=True)


# -- the measurement (in bench.workload's process, with Django) ----------------------------------


class Fleet:
    """``count`` simulated ants in processes of up to ANTS_PER_PROCESS."""

    def __init__(self, count: int, tag: str) -> None:
        self.procs: list[subprocess.Popen] = []
        env = {**os.environ}
        for first in range(0, count, ANTS_PER_PROCESS):
            cmd = [sys.executable, "-m", "bench.fleet", "--redis", os.environ["REDIS_URL"], "--prefix",
                   os.environ["FORMICARY_REDIS_PREFIX"], "--first", str(first), "--count",
                   str(min(ANTS_PER_PROCESS, count - first)), "--tag", tag]  # fmt: skip
            self.procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True))
        for p in self.procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "READY":
                raise SystemExit("a simulated-ant process did not start")

    def stop(self) -> list[dict[str, Any]]:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        out = []
        for p in self.procs:
            text, _ = p.communicate(timeout=60)
            out += [json.loads(line[7:]) for line in text.splitlines() if line.startswith("RESULT ")]
        return out


def _spy(world: Any, phase: str, queen: int) -> Any:
    """With ``--profile``: py-spy on the queen for one phase (``<profile>-<ants>-<phase>-*.txt``)."""
    if not world.profile:
        return None
    from bench import spy

    return spy.Recorder(Path(f"{world.profile}-{phase}"), {"queen": queen})


def run(world: Any, tmp: Path, sizes: dict[str, Any]) -> dict[str, Any]:
    from django.db.models import Count, F, Max, Min

    from bench import procstat
    from bench.workload import Distributed, pct
    from jobs.models import JobExecution, JobRequest, TaskExecution

    out: dict[str, Any] = {"tasks": sizes["w6_tasks"], "fleets": {}}
    for count in sizes["w6_fleets"]:
        tag = f"sim{count}"
        fleet = Fleet(count, tag)
        cluster = Distributed(tmp, ants=False)
        cluster.start()
        try:
            time.sleep(HEARTBEAT_SECS + 1)  # the queen has heard every ant at least once
            world.cluster = cluster
            try:
                world.wait_done([world.submit("bench-single")], timeout=600)  # warm-up, end to end
            except SystemExit as exc:
                raise SystemExit(f"{count} simulated ants: {exc}\n{cluster.logs()}") from None
            # idle: only heartbeats (count / 5 s registrations) reach the queen
            queen = cluster.procs["queen"].pid
            spied = _spy(world, f"{count}-idle", queen)
            cpu0, t0 = procstat.cpu_secs(queen), time.monotonic()
            time.sleep(sizes["w6_idle_secs"])
            idle_share = (procstat.cpu_secs(queen) - cpu0) / (time.monotonic() - t0)
            if spied is not None:
                spied.stop()
            spied = _spy(world, f"{count}-tasks", queen)
            n = sizes["w6_tasks"]
            cpu0, busy0 = procstat.cpu_secs(queen), procstat.machine_busy_secs()
            t0 = time.time()
            ids: list[int] = []
            for start in range(0, n, 1000):  # the bulk API takes up to 1,000 a call
                ids += world.submit_many("bench-single", min(1000, n - start))
            submit_s = time.time() - t0
            stuck, log_tail = "", ""
            try:
                world.wait_done(ids, timeout=max(180, n / 10))
            except SystemExit as exc:  # report what happened instead of nothing
                stuck = str(exc).splitlines()[0]
                log_tail = cluster.logs()[-2000:]
            cpu = procstat.cpu_secs(queen) - cpu0
            busy = procstat.machine_busy_secs() - busy0
            if spied is not None:
                spied.stop()
            tasks = TaskExecution.objects.filter(
                job_execution__job_request_id__in=ids, ended_at__isnull=False
            )
            states = dict(
                TaskExecution.objects.filter(job_execution__job_request_id__in=ids)
                .values_list("task_state")
                .annotate(c=Count("id"))
                .values_list("task_state", "c")
            )
            states["no task yet"] = n - sum(states.values())
            end = JobExecution.objects.filter(job_request_id__in=ids).aggregate(m=Max("ended_at"))["m"]
            wall = end.timestamp() - t0 if end else time.time() - t0
            n_done = tasks.count()
            # dispatch latency: the task became READY (its execution was created when the request
            # was claimed) -> sent to an ant (STARTED); submit-to-start adds the time pending
            ready_to_sent = [
                (s - c).total_seconds() * 1000
                for s, c in tasks.values_list("started_at", "job_execution__started_at")
            ]
            created = dict(JobRequest.objects.filter(pk__in=ids).values_list("pk", "created_at"))
            firsts = tasks.values("job_execution__job_request_id").annotate(s=Min("started_at"))
            submit_to_sent = [(r["s"] - created[r["job_execution__job_request_id"]]).total_seconds() * 1000
                              for r in firsts]  # fmt: skip
            answered = tasks.filter(ended_at__isnull=False).annotate(d=F("ended_at") - F("started_at"))
            round_trip = [d.total_seconds() * 1000 for d in answered.values_list("d", flat=True)]
            ants_used = tasks.values("ant_id").distinct().count()
            peak_rss = procstat.peak_rss_mb(queen)  # while the queen is still there
        finally:
            cluster.stop()
            results = fleet.stop()
        lag = [v for r in results for v in r["lag_ms"]]
        out["fleets"][str(count)] = {
            "ants": count, "processes": len(results), "answered": sum(r["answered"] for r in results),
            "ants_used": ants_used, "tasks_per_s": n_done / wall, "wall_s": wall, "submit_s": submit_s,
            "finished": n_done, "stuck": stuck, "task_states": states, "log_tail": log_tail if stuck else "",
            "queen_cpu_ms_per_task": cpu * 1000 / max(n_done, 1), "machine_cpu_ms_per_task": busy * 1000 / max(n_done, 1),
            "idle_queen_cpu_share": idle_share,
            "dispatch_p50_ms": pct(ready_to_sent, 0.5), "dispatch_p95_ms": pct(ready_to_sent, 0.95),
            "submit_to_sent_p50_ms": pct(submit_to_sent, 0.5), "submit_to_sent_p95_ms": pct(submit_to_sent, 0.95),
            "send_to_ant_p50_ms": pct(lag, 0.5), "send_to_ant_p95_ms": pct(lag, 0.95),
            "sent_to_answered_p50_ms": pct(round_trip, 0.5),
            "peak_rss_queen_mb": peak_rss,
        }  # fmt: skip
    fleets = out["fleets"]
    small, big = fleets[str(min(sizes["w6_fleets"]))], fleets[str(max(sizes["w6_fleets"]))]
    out["cpu_ratio"] = big["queen_cpu_ms_per_task"] / small["queen_cpu_ms_per_task"]
    out["dispatch_ratio"] = big["dispatch_p50_ms"] / max(small["dispatch_p50_ms"], 1e-6)
    out["summary"] = (
        f"{n} tasks per fleet; queen CPU/task x{out['cpu_ratio']:.2f} and dispatch p50 x{out['dispatch_ratio']:.2f} "
        f"from {min(sizes['w6_fleets'])} to {max(sizes['w6_fleets'])} ants; idle heartbeats of {big['ants']} ants "
        f"{big['idle_queen_cpu_share'] * 100:.1f} % of a core"
    )
    return out


def table(r: dict[str, Any]) -> str:
    rows = [
        f"W6 scale: {r['tasks']} zero-work single-task requests per fleet, submitted at once (1,000 a call)",
        "| ants | tasks/s | queen CPU ms/task | dispatch p50 / p95 ms | submit-to-sent p50 / p95 ms | "
        "queen -> ant p50 / p95 ms | idle queen CPU (heartbeats) | machine CPU ms/task | ants used | notes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in r["fleets"].values():
        rows.append(
            f"| {f['ants']} | {f['tasks_per_s']:.1f} | {f['queen_cpu_ms_per_task']:.2f} | "
            f"{f['dispatch_p50_ms']:.1f} / {f['dispatch_p95_ms']:.1f} | "
            f"{f['submit_to_sent_p50_ms']:.1f} / {f['submit_to_sent_p95_ms']:.1f} | "
            f"{f['send_to_ant_p50_ms']:.1f} / {f['send_to_ant_p95_ms']:.1f} | {f['idle_queen_cpu_share'] * 100:.1f} % | "
            f"{f['machine_cpu_ms_per_task']:.1f} | {f['ants_used']} |"
            + (
                f" {f['finished']} of {r['tasks']} finished: {f['stuck']}; task states {f['task_states']} |"
                if f.get("stuck")
                else " |"
            )
        )
    rows.append(r["summary"])
    return "\n".join(rows)


if __name__ == "__main__":
    main()
