"""Task executors: one module per method family behind the ``Executor`` interface.

``executor_for(method)`` returns the executor for a task method; built-ins (SHELL, HTTP_*) are
imported lazily, and DOCKER/KUBERNETES resolve to ``ants.executors.docker`` /
``ants.executors.kubernetes`` once those modules exist. ``register_executor`` adds others.
"""

from ants.executors.base import (
    ExecutionContext,
    ExecutionResult,
    Executor,
    UnsupportedMethod,
    executor_for,
    known_methods,
    register_executor,
)

__all__ = [
    "ExecutionContext",
    "ExecutionResult",
    "Executor",
    "UnsupportedMethod",
    "executor_for",
    "known_methods",
    "register_executor",
]
