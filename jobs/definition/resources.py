"""A task's `resources` block (the reference's shape): which job resource it leases before it
runs, and which of the resource's configs it sees. Pure: the queen's lease service
(jobs/queen/leases.py) reads the claim; validation reports the problems at upload.

    resources:
      resource_type: deploy-slot      # required
      platform: staging               # optional: only resources of this platform
      tags: [eu]                      # optional: the resource must carry every one
      value: 1                        # units leased (default 1)
      extract_config:                 # optional: only these configs, names prefixed
        properties: [Host]
        context_prefix: Staging_
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KEYS = ("resource_type", "platform", "tags", "value", "extract_config")
EXTRACT_KEYS = ("properties", "context_prefix")
MAX_VALUE = 1_000_000


@dataclass(frozen=True)
class ResourceClaim:
    resource_type: str
    platform: str = ""
    tags: tuple[str, ...] = ()
    value: int = 1
    properties: tuple[str, ...] = ()  # empty: every config
    context_prefix: str = ""

    def describe(self) -> str:
        extra = [self.platform] if self.platform else []
        extra += [f"tags {','.join(self.tags)}"] if self.tags else []
        return self.resource_type + (f" ({'; '.join(extra)})" if extra else "")

    def visible(self, configs: Mapping[str, str]) -> dict[str, str]:
        """The configs the task sees, under the names it sees them by."""
        names = self.properties or tuple(configs)
        return {self.context_prefix + n: configs[n] for n in names if n in configs}


@dataclass
class ClaimResult:
    claim: ResourceClaim | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)  # (field, message)


def read_claim(raw: Any) -> ClaimResult:
    """The claim of a task's `resources` value (None when it declares none) and what is wrong."""
    out = ClaimResult()
    if not raw:
        return out
    if not isinstance(raw, Mapping):
        out.problems.append(("resources", "expected a mapping with resource_type, value, tags"))
        return out
    for key in raw:
        if key not in KEYS:
            out.problems.append((f"resources.{key}", f"unknown key (one of {', '.join(KEYS)})"))
    resource_type = raw.get("resource_type")
    if not isinstance(resource_type, str) or not resource_type.strip():
        out.problems.append(("resources.resource_type", "required: the type of the resource to lease"))
        resource_type = ""
    platform = raw.get("platform") or ""
    if not isinstance(platform, str):
        out.problems.append(("resources.platform", "expected text"))
        platform = ""
    tags = raw.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str | int | float) for t in tags):
        out.problems.append(("resources.tags", "expected a list of tags"))
        tags = []
    value = raw.get("value", 1)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VALUE:
        out.problems.append(
            ("resources.value", f"expected a whole number from 1 to {MAX_VALUE}, got {value!r}")
        )
        value = 1
    extract = raw.get("extract_config") or {}
    properties: list[Any] = []
    prefix: Any = ""
    if not isinstance(extract, Mapping):
        out.problems.append(
            ("resources.extract_config", "expected a mapping with properties, context_prefix")
        )
    else:
        for key in extract:
            if key not in EXTRACT_KEYS:
                out.problems.append(
                    (f"resources.extract_config.{key}", f"unknown key (one of {', '.join(EXTRACT_KEYS)})")
                )
        properties = extract.get("properties") or []
        prefix = extract.get("context_prefix") or ""
        if not isinstance(properties, list) or not all(isinstance(p, str) for p in properties):
            out.problems.append(("resources.extract_config.properties", "expected a list of config names"))
            properties = []
        if not isinstance(prefix, str):
            out.problems.append(("resources.extract_config.context_prefix", "expected text"))
            prefix = ""
    if resource_type:
        out.claim = ResourceClaim(
            resource_type=resource_type.strip(), platform=platform.strip(),
            tags=tuple(str(t).strip().lower() for t in tags if str(t).strip()), value=value,
            properties=tuple(properties), context_prefix=prefix,
        )  # fmt: skip
    return out
