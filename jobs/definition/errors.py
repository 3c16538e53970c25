"""Errors of the definitions core. Callers catch these two types only."""

from __future__ import annotations

from dataclasses import asdict, dataclass


class TemplateError(Exception):
    """A template could not be compiled or rendered; `line` is 1-based (0 when unknown)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message, line)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return f"template: line {self.line}: {self.message}" if self.line else f"template: {self.message}"


class TemplateLimitError(TemplateError):
    """A render did more work than allowed; ``limit`` names the cap (``max_steps``, ...)."""

    def __init__(self, message: str, line: int = 0, limit: str = "", value: float = 0) -> None:
        super().__init__(message, line)
        self.limit = limit
        self.value = value


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition, precise enough to point the user at it."""

    message: str
    task: str | None = None
    field: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        parts = []
        if self.task is not None:
            parts.append(f"task '{self.task}'")
        if self.field is not None:
            parts.append(f"field '{self.field}'")
        text = ": ".join([*parts, self.message])
        return f"{text} (line {self.line})" if self.line else text

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class DefinitionError(Exception):
    """A definition was rejected; `problems` lists every reason found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems) or "invalid definition")

    def to_dict(self) -> dict[str, object]:
        return {"message": str(self), "problems": [p.to_dict() for p in self.problems]}


class DefinitionLimitError(DefinitionError):
    """The definition's template hit a render limit; ``limit`` names it (``max_steps``, ...)."""

    def __init__(self, problems: list[Problem], limit: str) -> None:
        super().__init__(problems)
        self.limit = limit
