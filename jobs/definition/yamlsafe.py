"""Safe YAML reading that remembers where every key and value was written.

We compose the node tree (never constructing arbitrary objects) and build plain values ourselves:
that gives each key its line, keeps scalars' original text ("on", "1", "1.0"), and lets us cap
alias expansion (billion laughs), nesting depth and document size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from .errors import Problem

MAX_NODES = 100_000  # values built from one document, aliases counted each time they expand
MAX_DEPTH = 64

_TAG = "tag:yaml.org,2002:"


class LDict(dict[str, Any]):
    """A mapping that knows the line of itself, of each key and the original text of scalar values."""

    line: int | None
    lines: dict[str, int]
    texts: dict[str, str]

    def __init__(self, line: int | None = None) -> None:
        super().__init__()
        self.line = line
        self.lines = {}
        self.texts = {}


class LList(list[Any]):
    """A sequence that knows its line and each item's line and original scalar text."""

    line: int | None
    lines: list[int | None]
    texts: list[str | None]

    def __init__(self, line: int | None = None) -> None:
        super().__init__()
        self.line = line
        self.lines = []
        self.texts = []


class _Loader(yaml.SafeLoader):
    pass


# libyaml composes about fifteen times faster (a templated request's definition is parsed at each
# start). The pure loader stays the judge: it reads every document in which libyaml or the
# builder found anything wrong (its messages are the ones users see), and those with a tab or a
# byte order mark, which libyaml takes in places where the pure loader refuses them
_FastLoader: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)  # type: ignore[assignment]
LIBYAML = _FastLoader is not None  # PyYAML's wheels bundle it


class _TooBig(Exception):
    pass


def _is_text(value: str) -> bool:
    """Storable text: encodable as UTF-8 and free of NUL characters."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Builder:
    def __init__(
        self, loader: yaml.SafeLoader, line_map: Sequence[int] | None, problems: list[Problem]
    ) -> None:
        self.loader = loader
        self.line_map = line_map
        self.problems = problems
        self.count = 0

    def line(self, node: yaml.Node) -> int:
        rendered = node.start_mark.line + 1
        if self.line_map and 0 < rendered <= len(self.line_map):
            return self.line_map[rendered - 1]
        return rendered

    def build(self, node: yaml.Node, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooBig(f"document expands to more than {MAX_NODES} values (YAML aliases?)")
        if depth > MAX_DEPTH:
            raise _TooBig(f"document nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if isinstance(node, yaml.SequenceNode):
            seq = LList(self.line(node))
            for item in node.value:
                seq.append(self.build(item, depth + 1))
                seq.lines.append(self.line(item))
                seq.texts.append(item.value if isinstance(item, yaml.ScalarNode) else None)
            return seq
        assert isinstance(node, yaml.MappingNode), "a composed node is a scalar, a sequence or a mapping"
        mapping = LDict(self.line(node))
        self.fill_mapping(mapping, node, depth)
        return mapping

    def fill_mapping(self, mapping: LDict, node: yaml.MappingNode, depth: int, merged: bool = False) -> None:
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                # `<<: *defaults`: copy keys the mapping does not set itself.
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for src in sources:
                    if isinstance(src, yaml.MappingNode):
                        self.count += 1
                        self.fill_mapping(mapping, src, depth + 1, merged=True)
                    else:
                        self.problems.append(Problem("merge key needs a mapping", line=self.line(key_node)))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(Problem("mapping keys must be text", line=self.line(key_node)))
                continue
            key = key_node.value  # the key as written: `404:` gives "404", `on:` gives "on"
            if not _is_text(key):
                self.problems.append(
                    Problem("key with a lone surrogate or NUL character", line=self.line(key_node))
                )
                continue
            if key in mapping:
                if not merged:
                    self.problems.append(Problem(f"duplicate key '{key}'", line=self.line(key_node)))
                continue
            mapping[key] = self.build(value_node, depth + 1)
            mapping.lines[key] = self.line(key_node)
            if isinstance(value_node, yaml.ScalarNode):
                mapping.texts[key] = value_node.value

    def scalar(self, node: yaml.ScalarNode) -> Any:
        if not _is_text(node.value):
            # "\ud800" or "\0" escapes: no UTF-8 form, or a NUL the database cannot store
            self.problems.append(Problem("text with a lone surrogate or NUL character", line=self.line(node)))
            return ""
        tag = node.tag or ""
        if not tag.startswith(_TAG):
            self.problems.append(Problem(f"unsupported YAML tag '{tag}'", line=self.line(node)))
            return node.value
        kind = tag[len(_TAG) :]
        if kind in ("null", "bool", "int", "float"):
            try:
                return self.loader.construct_object(node)
            except Exception:  # e.g. an int too odd to convert: keep the text
                return node.value
        return node.value  # str, timestamp, binary...: keep the text as written


def load_yaml(text: str, line_map: Sequence[int] | None = None) -> tuple[Any, list[Problem]]:
    """Parse one YAML (or JSON) document; returns (value, problems). Never raises for bad input."""
    if LIBYAML and "\t" not in text and "\ufeff" not in text:
        built = read_with_libyaml(text, line_map)
        if built is not None:
            return built
    return read_with_pure_loader(text, line_map)


def read_with_pure_loader(text: str, line_map: Sequence[int] | None = None) -> tuple[Any, list[Problem]]:
    """``load_yaml`` with PyYAML's pure-Python loader only."""
    problems: list[Problem] = []
    try:
        loader = _Loader(text)  # the reader already rejects non-printable characters here
    except yaml.YAMLError as e:
        return None, [Problem(f"invalid YAML: {e}")]
    try:
        node = loader.get_single_node()
        if node is None:
            return None, problems
        builder = _Builder(loader, line_map, problems)
        return builder.build(node), problems
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        if line and line_map and line <= len(line_map):
            line = line_map[line - 1]
        problems.append(Problem(f"invalid YAML: {e.problem or e.context or 'syntax error'}", line=line))
    except _TooBig as e:
        problems.append(Problem(str(e)))
    except RecursionError:
        problems.append(Problem(f"document nested deeper than {MAX_DEPTH} levels"))
    except yaml.YAMLError as e:
        problems.append(Problem(f"invalid YAML: {e}"))
    except (ValueError, TypeError, UnicodeError) as e:
        problems.append(Problem(f"invalid YAML: {e}"))
    finally:
        loader.dispose()
    return None, problems


def read_with_libyaml(text: str, line_map: Sequence[int] | None = None) -> tuple[Any, list[Problem]] | None:
    """The document through libyaml; None when it raised or found a problem (read it again slowly)."""
    if _FastLoader is None:
        return None
    try:
        loader = _FastLoader(text)
    except Exception:  # a lone surrogate cannot be encoded for it, say
        return None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        problems: list[Problem] = []
        value = _Builder(loader, line_map, problems).build(node)
        return None if problems else (value, problems)
    except Exception:
        return None
    finally:
        loader.dispose()
