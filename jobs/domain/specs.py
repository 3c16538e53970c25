"""Loading a job's definition for execution.

The graph (edges, retries, always_run) is read from the definition as uploaded and cached per
version: versions never change. Task bodies (scripts, urls, variables) are rendered at dispatch
with the live template data, so ``JobElapsedSecs`` and outputs of earlier tasks are current.
"""

from functools import lru_cache
from typing import Any

from jobs.definition.fanout import INSTANCE_INFIX, step_of
from jobs.definition.layers import render_for_task, render_job, render_task
from jobs.definition.model import JobSpec, TaskSpec
from jobs.definition.parser import load_definition


@lru_cache(maxsize=512)
def graph_spec(definition_id: int, raw_yaml: str) -> JobSpec:
    if is_static(raw_yaml):
        return _static_spec(raw_yaml)  # the same parse as its rendering: done once, not twice
    return load_definition(raw_yaml)


@lru_cache(maxsize=512)
def definition_text(definition_id: int) -> str:
    """A version's text, read once: the hot paths need not fetch it with every row."""
    from jobs.models import JobDefinition

    return JobDefinition.objects.values_list("raw_yaml", flat=True).get(pk=definition_id)


def graph_of(definition_id: int) -> JobSpec:
    return graph_spec(definition_id, definition_text(definition_id))


def is_static(raw_yaml: str) -> bool:
    """A definition without template actions renders the same with any data."""
    return "{{" not in raw_yaml


@lru_cache(maxsize=512)
def _static_spec(raw_yaml: str) -> JobSpec:
    return load_definition(raw_yaml, {})


def rendered_spec(raw_yaml: str, data: dict[str, Any]) -> JobSpec:
    """Render with ``data``; the ``job_variables`` the definition declares take their place in
    the precedence (``jobs.definition.layers``), and a second pass makes them visible to the
    rest of the template.

    A definition without template actions is parsed once and the result shared (callers treat
    specs as read-only): rendering, YAML parsing and validation were most of a dispatch's CPU."""
    if is_static(raw_yaml):
        return _static_spec(raw_yaml)
    return render_job(raw_yaml, data)[0]


def rendered_task(raw_yaml: str, data: dict[str, Any], task_type: str) -> TaskSpec | None:
    """One task for dispatch: ``rendered_spec``, then the task's own ``variables`` as template
    values too (a third pass, only for a templated task that has variables)."""
    if is_static(raw_yaml):
        return _static_spec(raw_yaml).task(task_type)
    return render_task(raw_yaml, data, task_type)


def task_of(spec: JobSpec, task_type: str) -> TaskSpec | None:
    """The task of ``task_type``; for a fan-out instance ("<step>-fo-<i>"), its step's."""
    found = spec.task(task_type)
    if found is None and INSTANCE_INFIX in task_type:
        step = spec.task(step_of(task_type) or "")
        return step if step is not None and step.fan_out else None
    return found


def rendered_for_task(raw_yaml: str, data: dict[str, Any], task_type: str | None) -> JobSpec:
    """``rendered_spec``, or with ``task_type`` the definition as that task sees it (its own
    ``variables`` among the template values)."""
    if task_type is None or is_static(raw_yaml):
        return rendered_spec(raw_yaml, data)
    return render_for_task(raw_yaml, data, task_type)
