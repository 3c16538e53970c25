"""Pure-Python core for job definitions: templates, parsing, validation, the DAG, DOT output.

No Django here (an import test keeps it so): the queen, the API and the ant all share it.
"""

from .dag import NextStep, always_run_tasks, first_task, next_step, targets
from .dot import to_dot
from .errors import DefinitionError, Problem, TemplateError
from .model import DEFAULT_METHOD, METHODS, JobSpec, TaskSpec
from .parser import builtin_params, load_definition, spec_from_dict
from .template import compile_template, render
from .validate import validate

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "DefinitionError",
    "JobSpec",
    "NextStep",
    "Problem",
    "TaskSpec",
    "TemplateError",
    "always_run_tasks",
    "builtin_params",
    "compile_template",
    "first_task",
    "load_definition",
    "next_step",
    "render",
    "spec_from_dict",
    "targets",
    "to_dot",
    "validate",
]
