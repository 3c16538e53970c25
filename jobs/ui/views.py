"""Server-rendered pages of the web UI. Every read goes through the organization scope: another
organization's object is a 404. Writes call the same services as the REST API."""

import difflib
import functools
import json
import re
import subprocess
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone

from ants.web import selectors as ant_selectors
from artifacts.models import Artifact
from formicary_site.error_views import post_only
from jobs import selectors
from jobs.consumers import request_snapshot
from jobs.definition.dot import to_dot
from jobs.definition.durations import format_duration
from jobs.definition.template_vars import template_variables
from jobs.domain.specs import graph_spec
from jobs.models import JobDefinition, JobRequest
from jobs.services import rate_limits
from jobs.services.definitions import (
    definition_set_disabled,
    definition_upload,
    job_config_delete,
    job_config_save,
)
from jobs.services.request_actions import request_act
from jobs.services.requests import request_submit
from jobs.states import JOB_RUNNING, JOB_TERMINAL, JobState
from jobs.stats import definition_stats, request_counts
from jobs.ui import approval_panel, request_page
from jobs.ui.forms import JobConfigForm, SubmitForm, UploadForm
from orgs.models import User
from orgs.scoping import for_user
from orgs.usage import QuotaExceeded
from orgs.web_permissions import requires

PAGE_SIZE = 25
_LINE_REF = re.compile(r"\blines? (\d+)")
REQUEST_TABS: dict[str, list[str]] = {
    "all": [str(s) for s in JobState],
    "running": [str(s) for s in JOB_RUNNING],
    "waiting": [JobState.PENDING, JobState.PAUSED],
    "done": [str(s) for s in JOB_TERMINAL],
}
# User actions on a request; pause and restart appear once the control services provide them.
REQUEST_ACTIONS = {
    "cancel": "request_cancel",
    "pause": "request_pause",
    "resume": "request_resume",
    "restart": "request_restart",
}


def member_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Logged in and in an organization; a new user first creates or joins one."""

    @login_required
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.organization_id:  # type: ignore[union-attr]
            return redirect("orgs:setup")
        return view(request, *args, **kwargs)

    return wrapper


def _org_id(request: HttpRequest) -> int:
    user = request.user
    assert isinstance(user, User) and user.organization_id, "member_required lets only members in"
    return user.organization_id


def _errors(exc: ValidationError) -> list[str]:
    return list(exc.messages)


# -- graph pictures -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _svg_of(definition_id: int, raw_yaml: str, counted: bool = False) -> str | None:
    """The task graph as inline SVG (``dot -Tsvg``); versions never change, so it is cached.
    ``counted``: each fan-out step gets a line for its instance counts, which the request page
    fills live."""
    spec = graph_spec(definition_id, raw_yaml)
    dot = to_dot(spec, fan_out_counts={t.task_type: {} for t in spec.tasks if t.fan_out} if counted else None)
    try:
        out = subprocess.run(
            ["dot", "-Tsvg"], input=dot.encode(), capture_output=True, timeout=20, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    svg = out.stdout.decode()
    # drop the XML prolog and doctype: the picture is inlined into the page
    return svg[svg.find("<svg") :]


def graph_svg(definition: JobDefinition, counted: bool = False) -> str | None:
    return _svg_of(definition.pk, definition.raw_yaml, counted)


@member_required
def definition_graph(request: HttpRequest, pk: int) -> HttpResponse:
    definition = get_object_or_404(selectors.definitions_live(_org_id(request)), pk=pk)
    svg = graph_svg(definition)
    if svg is None:
        return HttpResponse("graphviz 'dot' is not available", status=503, content_type="text/plain")
    return HttpResponse(svg, content_type="image/svg+xml")


# -- request rows -------------------------------------------------------------------------------

KEY_PARAMS = 3


def _with_row_details(requests: Any) -> list[JobRequest]:
    """Requests of a list, each with what its row shows: duration, trigger, a few params and
    the state of each task (two prefetches for the page, not a query per row)."""
    rows: list[Any] = list(selectors.with_list_rows(requests))  # annotated below for the template
    now = timezone.now()
    for r in rows:
        execution = r.last_execution
        if execution is not None:
            end = execution.ended_at or (now if r.job_state not in JOB_TERMINAL else r.updated_at)
            r.duration_text = format_duration(round(max((end - execution.started_at).total_seconds(), 0)))
            r.task_strip = [(t.task_type, t.task_state) for t in execution.tasks.all()]
        else:
            r.duration_text, r.task_strip = "", []
        if r.cron_triggered:
            r.trigger = "cron"
        elif r.parent_id:
            r.trigger = f"fork of #{r.parent_id}"
        elif r.triggered_by:
            who = r.user.username if r.user else ""
            r.trigger = f"{who} ({r.triggered_by})" if who else r.triggered_by
        else:
            r.trigger = r.user.username if r.user else "—"
        r.key_params = [(p.name, p.display_value()) for p in list(r.params.all())[:KEY_PARAMS]]
    return rows


# -- dashboard ------------------------------------------------------------------------------------


@member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    requests = selectors.requests_for(_org_id(request))
    # the open requests whenever submitted (their state index), the finished ones of the requests
    # created in the last 24 h (their counts per hour): the page costs the same with a year of history
    open_states = [str(s) for tab in ("running", "waiting") for s in cast(list[str], REQUEST_TABS[tab])]
    unfinished = requests.filter(job_state__in=open_states)
    since = timezone.now() - timedelta(hours=24)
    by_state = dict(unfinished.values_list("job_state").annotate(n=Count("id")).values_list("job_state", "n"))
    for (_, state), n in request_counts(_org_id(request), start=since, states=REQUEST_TABS["done"]).items():
        by_state[state] = by_state.get(state, 0) + n
    ended = by_state.get(JobState.COMPLETED, 0) + by_state.get(JobState.FAILED, 0)
    context = {
        "running": sum(by_state.get(s, 0) for s in REQUEST_TABS["running"]),
        "waiting": sum(by_state.get(s, 0) for s in REQUEST_TABS["waiting"]),
        "finished": sum(by_state.get(s, 0) for s in REQUEST_TABS["done"]),
        "failed": by_state.get(JobState.FAILED, 0),
        "success_pct": round(100 * by_state.get(JobState.COMPLETED, 0) / ended) if ended else None,
        "recent": _with_row_details(requests[:12]),
        "ants": _ants(request),
        "definitions": selectors.definitions_live(_org_id(request)).filter(is_latest=True).count(),
    }
    return render(request, "jobs/dashboard.html", context)


def _ants(request: HttpRequest) -> list[dict[str, Any]]:
    """The ants the API shows this user (shared ones and the organization's own): names,
    capacity and load, never other tenants' work."""
    rows = []
    stale = timezone.now() - timedelta(seconds=30)
    for ant in ant_selectors.ants_for(org_id=_org_id(request), superuser=request.user.is_superuser):
        alive = ant.alive and ant.last_heartbeat_at >= stale
        pct = round(100 * ant.current_load / ant.max_capacity) if ant.max_capacity else 0
        rows.append({"ant": ant, "alive": alive, "load_pct": min(pct, 100)})
    return rows


# -- job definitions ------------------------------------------------------------------------------


@member_required
def definition_list(request: HttpRequest) -> HttpResponse:
    qs = selectors.definitions_live(_org_id(request)).filter(is_latest=True)
    q = request.GET.get("q", "").strip()
    if q:
        qs = qs.filter(Q(job_type__icontains=q) | Q(description__icontains=q) | Q(tags__icontains=q))
    qs = qs.annotate(
        total=Count("requests"),
        running=Count("requests", filter=Q(requests__job_state__in=REQUEST_TABS["running"])),
    ).order_by("job_type")
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "jobs/definition_list.html", {"page": page, "q": q})


@member_required
@requires("JobDefinition:Write")
def definition_upload_view(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        try:
            definition, created = definition_upload(
                org_id=_org_id(request), user=request.user, text=form.cleaned_data["text"]
            )
        except ValidationError as exc:
            errors = _errors(exc)
        else:
            note = "uploaded as version" if created else "unchanged: same text as version"
            messages.success(request, f"{definition.job_type} {note} {definition.version}")
            for warning in selectors.definition_warnings(definition):
                messages.warning(request, warning)
            return redirect("ui:definition", pk=definition.pk)
    # the validator names lines as "line N": the editor marks them and each error links to its line
    cited = [(e, [int(n) for n in _LINE_REF.findall(e)]) for e in errors]
    error_lines = sorted({n for _, ns in cited for n in ns})
    context = {"form": form, "errors": cited, "error_lines": ",".join(map(str, error_lines))}
    return render(request, "jobs/definition_upload.html", context)


def _submit_form(definition: JobDefinition, data: Any = None) -> SubmitForm:
    """Fields for the required params, then for every other variable the template uses."""
    defined = set(definition.spec.get("job_variables") or {})
    return SubmitForm(
        data,
        required_params=list(definition.spec.get("required_params") or []),
        optional_params=template_variables(definition.raw_yaml, defined=defined),
    )


def _definition_context(request: HttpRequest, definition: JobDefinition, **extra: Any) -> dict[str, Any]:
    org_id = _org_id(request)
    older = (
        selectors.definitions_live(org_id)
        .filter(job_type=definition.job_type, version__lt=definition.version)
        .order_by("-version")
        .first()
    )
    return {
        "diff": None,
        "diff_from": older or definition,
        "diff_to": definition,
        "definition": definition,
        "svg": graph_svg(definition),
        "versions": selectors.definitions_live(org_id)
        .filter(job_type=definition.job_type)
        .order_by("-version"),
        "configs": selectors.job_configs(org_id, definition.job_type),
        "stats": definition_stats(definition),
        "recent": selectors.requests_for(org_id).filter(job_type=definition.job_type)[:10],
        "submit_form": extra.pop("submit_form", None) or _submit_form(definition),
        "config_form": extra.pop("config_form", None) or JobConfigForm(),
        "tasks": definition.spec.get("tasks") or [],
        **extra,
    }


def _version_diff(request: HttpRequest, definition: JobDefinition) -> dict[str, Any]:
    """``?from=<id>&to=<id>``: a unified line diff of two versions of the same job type."""
    ids = [request.GET.get("from", ""), request.GET.get("to", "")]
    if not all(i.isascii() and i.isdigit() for i in ids):
        return {}
    versions = selectors.definitions_live(_org_id(request)).filter(job_type=definition.job_type)
    old, new = (get_object_or_404(versions, pk=int(i)) for i in ids)
    lines = difflib.unified_diff(
        old.raw_yaml.splitlines(), new.raw_yaml.splitlines(),
        f"v{old.version}", f"v{new.version}", lineterm="",
    )  # fmt: skip
    kinds = {"+": "add", "-": "del", "@": "hunk"}
    diff = [(kinds.get(line[:1], "ctx"), line) for line in lines]
    return {"diff": diff, "diff_from": old, "diff_to": new}


@member_required
def definition_detail(request: HttpRequest, pk: int) -> HttpResponse:
    definition = get_object_or_404(selectors.definitions_live(_org_id(request)), pk=pk)
    context = _definition_context(request, definition, **_version_diff(request, definition))
    return render(request, "jobs/definition_detail.html", context)


@member_required
@requires("JobRequest:Submit", methods=("POST",))
def definition_submit(request: HttpRequest, pk: int) -> HttpResponse:
    definition = get_object_or_404(selectors.definitions_live(_org_id(request)), pk=pk)
    form = _submit_form(definition, request.POST or None)
    errors: list[str] = []
    retry_after = quota_status = 0
    if request.method == "POST" and form.is_valid():
        try:
            rate_limits.submit_rate_check(org_id=_org_id(request))
            job_request = request_submit(
                org_id=_org_id(request), user=request.user, job_type=definition.job_type,
                job_version=str(definition.version), params=form.params(),
                job_priority=form.cleaned_data.get("job_priority") or 0,
            )  # fmt: skip
        except QuotaExceeded as exc:
            errors, quota_status = exc.messages, exc.status
        except ValidationError as exc:
            errors = _errors(exc)
        except rate_limits.SubmitRateLimited as exc:
            errors, retry_after = [exc.message], exc.retry_after
        else:
            return redirect("ui:request", pk=job_request.pk)
    context = _definition_context(request, definition, submit_form=form, submit_errors=errors)
    response = render(
        request, "jobs/definition_detail.html", context,
        status=(quota_status or (429 if retry_after else 400)) if request.method == "POST" else 200,
    )  # fmt: skip
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


@member_required
@post_only
@requires("JobDefinition:Write")
def definition_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    definition = get_object_or_404(selectors.definitions_live(_org_id(request)), pk=pk)
    definition = definition_set_disabled(definition=definition, disabled=not definition.disabled)
    messages.success(request, f"{definition.job_type} {'disabled' if definition.disabled else 'enabled'}")
    return redirect("ui:definition", pk=pk)


@member_required
@post_only
@requires("Config:Write")
def definition_config_add(request: HttpRequest, pk: int) -> HttpResponse:
    definition = get_object_or_404(selectors.definitions_live(_org_id(request)), pk=pk)
    form = JobConfigForm(request.POST)
    if form.is_valid():
        try:
            job_config_save(org_id=_org_id(request), job_type=definition.job_type, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"config {form.cleaned_data['name']} saved")
            return redirect(reverse("ui:definition", args=[pk]) + "#configs")
    context = _definition_context(request, definition, config_form=form)
    return render(request, "jobs/definition_detail.html", context, status=400)


@member_required
@post_only
@requires("Config:Write")
def definition_config_delete(request: HttpRequest, pk: int, config_id: int) -> HttpResponse:
    definition = get_object_or_404(selectors.definitions_live(_org_id(request)), pk=pk)
    config = get_object_or_404(selectors.job_configs(_org_id(request), definition.job_type), pk=config_id)
    job_config_delete(config=config)
    messages.success(request, f"config {config.name} deleted")
    return redirect(reverse("ui:definition", args=[pk]) + "#configs")


# -- job requests ---------------------------------------------------------------------------------


@member_required
def request_list(request: HttpRequest) -> HttpResponse:
    tab = request.GET.get("tab", "all")
    if tab not in REQUEST_TABS:
        tab = "all"
    base = selectors.requests_for(_org_id(request))
    counts = {name: base.filter(job_state__in=states).count() for name, states in REQUEST_TABS.items()}
    qs = base.filter(job_state__in=REQUEST_TABS[tab])
    job_type = request.GET.get("job_type", "")
    state = request.GET.get("state", "")
    if job_type:
        qs = qs.filter(job_type=job_type)
    if state:
        qs = qs.filter(job_state=state)
    page = Paginator(qs.order_by("-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = _with_row_details(page.object_list)
    context = {
        "page": page, "tab": tab, "counts": counts, "job_type": job_type, "state": state,
        "job_types": base.order_by("job_type").values_list("job_type", flat=True).distinct(),
        "states": REQUEST_TABS[tab],
    }  # fmt: skip
    return render(request, "jobs/request_list.html", context)


def _available_actions(job_request: JobRequest) -> list[str]:
    state = job_request.job_state
    terminal = state in JOB_TERMINAL
    applies = {
        "cancel": not terminal,
        "pause": state in JOB_RUNNING or state == JobState.PENDING,
        "resume": state == JobState.PAUSED,
        "restart": terminal,
    }
    return [action for action in REQUEST_ACTIONS if applies[action]]


@member_required
def request_detail(request: HttpRequest, pk: int, view: str = "graph") -> HttpResponse:
    """The request page; ``view`` is the tab it opens on (``/jobs/requests/<id>/timeline``)."""
    job_request = get_object_or_404(
        selectors.requests_for(_org_id(request)).select_related("job_definition", "last_execution", "user"),
        pk=pk,
    )
    definition = job_request.job_definition
    rows, runs = request_page.task_rows(job_request)
    failure = request_page.failure_of(job_request, rows)
    stored = list(job_request.params.all())
    params = [(p.name, p.display_value()) for p in stored]
    # the re-run form starts from this run's params; secrets are typed again, never echoed
    required = list(definition.spec.get("required_params") or [])
    plain = {p.name: ("" if p.secret else p.plain_value()) for p in stored}
    rerun_extra = {name: v for name, v in plain.items() if name not in required and v}
    artifacts = (
        for_user(Artifact, request.user).filter(job_request=job_request).order_by("task_type", "name", "pk")
    )
    artifact_rows = request_page.artifact_rows(list(artifacts), runs)
    context = {
        "job_request": job_request,
        "definition": definition,
        "svg": graph_svg(definition, counted=True),
        "initial_view": view,
        "tasks": rows,
        "runs": len(runs),
        "failure": failure,
        "times": request_page.request_times(job_request),
        "params": params,
        "rerun_params": [(name, plain.get(name, "")) for name in required],
        "rerun_extra": json.dumps(rerun_extra) if rerun_extra else "",
        "artifacts": artifact_rows,
        # which run and attempt an artifact came from, once there is more than one of either
        "artifact_origin": len(runs) > 1 or any((row["attempt"] or 0) > 1 for row in artifact_rows),
        "actions": _available_actions(job_request),
        "snapshot": request_snapshot(request.user, job_request.pk),
        "page_state": request_page.page_state(job_request),
        "terminal": job_request.job_state in JOB_TERMINAL,
        "approvals": approval_panel.panel(request, job_request),
    }
    return render(request, "jobs/request_detail.html", context)


@member_required
def request_state(request: HttpRequest, pk: int) -> JsonResponse:
    """The same snapshot the events socket sends first; the page refetches it for new tasks."""
    snapshot = request_snapshot(request.user, pk)
    if snapshot is None:
        raise Http404()
    return JsonResponse(snapshot)


@member_required
@post_only
@requires("JobRequest:Cancel")
def request_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    job_request = get_object_or_404(selectors.requests_for(_org_id(request)), pk=pk)
    if action not in REQUEST_ACTIONS:
        raise Http404()
    try:
        result = request_act(action, request=job_request)
    except ValidationError as exc:
        messages.error(request, "; ".join(_errors(exc)))
    else:
        target = result.pk if isinstance(result, JobRequest) else job_request.pk
        verb = {"cancel": "cancelled", "pause": "paused", "resume": "resumed", "restart": "restarted"}[action]
        messages.success(request, f"{job_request.job_type} #{job_request.pk} {verb}")
        return redirect("ui:request", pk=target)
    return redirect("ui:request", pk=pk)


# -- artifacts, ants, error codes, system configs -----------------------------------------------------


@member_required
def artifact_list(request: HttpRequest) -> HttpResponse:
    qs = for_user(Artifact, request.user).select_related("job_request")
    name = request.GET.get("name", "").strip()
    kind = request.GET.get("kind", "")
    request_id = request.GET.get("request", "").strip()
    if name:
        qs = qs.filter(name__icontains=name)
    if kind:
        qs = qs.filter(kind=kind)
    if request_id.isascii() and request_id.isdigit():
        qs = qs.filter(job_request_id=int(request_id))
    page = Paginator(qs.order_by("-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "name": name,
        "kind": kind,
        "request_id": request_id,
        "kinds": Artifact.Kind.values,
    }
    return render(request, "jobs/artifact_list.html", context)


@member_required
def ant_list(request: HttpRequest) -> HttpResponse:
    return render(request, "jobs/ant_list.html", {"ants": _ants(request)})


@member_required
def error_code_list(request: HttpRequest) -> HttpResponse:
    qs = selectors.error_codes_for(_org_id(request))
    q = request.GET.get("q", "").strip()
    if q:
        qs = qs.filter(Q(error_code__icontains=q) | Q(description__icontains=q) | Q(regex__icontains=q))
    page = Paginator(qs.order_by("error_code"), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "jobs/error_code_list.html", {"page": page, "q": q})


@login_required
def system_config_list(request: HttpRequest) -> HttpResponse:
    """Superusers only; they need no organization (an operator may belong to none)."""
    if not request.user.is_superuser:  # type: ignore[union-attr]
        if not request.user.organization_id:  # type: ignore[union-attr]
            return redirect("orgs:setup")
        return render(request, "jobs/system_config_list.html", {"forbidden": True}, status=403)
    configs = [(c, c.display_value()) for c in selectors.system_configs()]
    return render(request, "jobs/system_config_list.html", {"configs": configs})
