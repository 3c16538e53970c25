"""Task executors: one module per method family behind the ``Executor`` interface.

``executor_for(method)`` returns the executor for a task method; built-ins (SHELL, HTTP_*) are
imported lazily, and DOCKER/KUBERNETES resolve to ``ants.executors.docker`` /
``ants.executors.kubernetes`` once those modules exist. ``register_executor`` adds others
(WEBSOCKET and MESSAGING below).
"""

from typing import Any

from ants.executors.base import (
    ExecutionContext,
    ExecutionResult,
    Executor,
    UnsupportedMethod,
    executor_for,
    known_methods,
    register_executor,
)


def _websocket_executor(config: Any) -> Executor:
    # Per-connection executors are created by ants.web.consumers; a plain ant only says where to go.
    from ants.executors.websocket import WebsocketExecutor

    return WebsocketExecutor(config)


def _messaging_executor(config: Any) -> Executor:
    from ants.executors.messaging import MessagingExecutor

    return MessagingExecutor(config)


register_executor("WEBSOCKET", _websocket_executor)
register_executor("MESSAGING", _messaging_executor)

__all__ = [
    "ExecutionContext",
    "ExecutionResult",
    "Executor",
    "UnsupportedMethod",
    "executor_for",
    "known_methods",
    "register_executor",
]
