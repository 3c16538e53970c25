"""``channels.testing`` imports its live-server helper, which needs daphne (and Twisted) at import
time; these tests use only ``WebsocketCommunicator``, so a placeholder stands in when daphne is
not installed instead of pulling a second ASGI server into the dependencies."""

import sys
import types

try:
    import daphne.testing  # noqa: F401
except ImportError:
    _stub = types.ModuleType("daphne.testing")
    _stub.DaphneProcess = object  # type: ignore[attr-defined]
    sys.modules.setdefault("daphne", types.ModuleType("daphne"))
    sys.modules["daphne.testing"] = _stub
