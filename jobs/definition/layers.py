"""Which value a template name takes when several sources define it, and the renders that use it.

Lowest to highest, the order in which the reference builds a task's template data (its
JobExecutionStateMachine.buildDynamicParams, then JobDefinition.GetDynamicTask):

    organization configs < job variables < job configs < request params < job context
    < the task's own `variables`

Built-in values (JobID, JobType, dates, ...) are set last and nothing overrides them here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .model import JobSpec, TaskSpec
from .parser import load_definition


class TemplateData(dict[str, Any]):
    """Template values, knowing which names hold an organization config's value (a job variable
    of the same name wins over those) and which are built-ins (nothing wins over those)."""

    def __init__(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        org_config_names: Iterable[str] = (),
        builtin_names: Iterable[str] = (),
    ) -> None:
        super().__init__(values or {})
        self.org_config_names = frozenset(org_config_names)
        self.builtin_names = frozenset(builtin_names)


def _layers_of(data: Mapping[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    return getattr(data, "org_config_names", frozenset()), getattr(data, "builtin_names", frozenset())


def with_job_variables(data: Mapping[str, Any], job_variables: Mapping[str, Any]) -> TemplateData:
    """``data`` with the definition's ``job_variables``: they fill names nothing else gives and
    replace organization configs."""
    org, builtin = _layers_of(data)
    out = TemplateData({**job_variables, **data}, org_config_names=org - job_variables.keys(),
                       builtin_names=builtin)  # fmt: skip
    for name in org & job_variables.keys():
        out[name] = job_variables[name]
    return out


def with_task_variables(data: Mapping[str, Any], task_variables: Mapping[str, Any]) -> TemplateData:
    """``data`` with a task's ``variables`` over everything but the built-ins."""
    org, builtin = _layers_of(data)
    out = TemplateData(data, org_config_names=org - task_variables.keys(), builtin_names=builtin)
    out.update({k: v for k, v in task_variables.items() if k not in builtin})
    return out


def render_job(text: str, data: Mapping[str, Any]) -> tuple[JobSpec, Mapping[str, Any]]:
    """The definition rendered with ``data`` and its job variables (a second pass makes them
    visible to the rest of the template), with the data of that pass."""
    spec = load_definition(text, data)
    if not spec.job_variables:
        return spec, data
    merged = with_job_variables(data, spec.job_variables)
    return load_definition(text, merged), merged


def render_for_task(text: str, data: Mapping[str, Any], task_type: str) -> JobSpec:
    """The definition rendered for one task as the reference does: the task's own ``variables``
    are template values too, so a task with ``variables: {Service: svc}`` renders
    ``{{.Service}}`` as ``svc`` (a third pass, only for a task that has variables)."""
    spec, merged = render_job(text, data)
    task = spec.task(task_type)
    if task is None or not task.variables:
        return spec
    return load_definition(text, with_task_variables(merged, task.variables))


def render_task(text: str, data: Mapping[str, Any], task_type: str) -> TaskSpec | None:
    """One task of ``render_for_task``."""
    return render_for_task(text, data, task_type).task(task_type)
