"""Task methods, written once for the definitions core, the queen and the ants (the reference's
``internal/types/task_method.go``). Pure names: both sides import this, it imports nothing."""

HTTP_METHODS = (
    "HTTP_GET",
    "HTTP_POST_FORM",
    "HTTP_POST_JSON",
    "HTTP_PUT_FORM",
    "HTTP_PUT_JSON",
    "HTTP_DELETE",
)
# What an ant runs when its settings name no methods: nothing that needs a container engine.
DEFAULT_ANT_METHODS = ("SHELL", *HTTP_METHODS)
# Methods ants run.
ANT_METHODS = frozenset({"KUBERNETES", "DOCKER", *DEFAULT_ANT_METHODS, "WEBSOCKET", "MESSAGING"})
# Methods the queen runs itself instead of sending to an ant.
QUEEN_METHODS = frozenset({"FORK_JOB", "AWAIT_FORKED_JOB", "EXPIRE_ARTIFACTS", "MANUAL"})
# Every method a definition may name.
METHODS = ANT_METHODS | QUEEN_METHODS
