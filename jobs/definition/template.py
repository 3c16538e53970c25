"""Go text/template for job definitions, written by hand (the reference's definitions are Go templates).

Sandboxed: `.A.B` only looks up mapping keys; no attribute access, no calling what the data holds.
Every failure is a TemplateError carrying the 1-based line of the action at fault; output size,
range iterations, evaluation steps (nodes walked, functions called, items Iterate makes), render
time and nesting depth are capped against abusive input, and a cap reached raises
TemplateLimitError naming it. ``budget()`` narrows the step cap for the calls inside it (the
queen renders in its loop with a small budget and sends what exceeds it to a worker).
"""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import functools
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import TemplateError, TemplateLimitError
from .gofmt import MISSING, format_value, type_name
from .template_funcs import FUNCS, SPECIAL_FORMS, FuncError, truth

__all__ = [
    "MISSING",
    "Template",
    "TemplateError",
    "TemplateLimitError",
    "budget",
    "compile_template",
    "output_actions",
    "render",
    "render_with_line_map",
]

MAX_OUTPUT = 10 * 1024 * 1024
MAX_RANGE_ITERATIONS = 100_000
# About 2 microseconds a step: a render stops within about half a second (the reference's
# definitions take a few hundred steps; `range Iterate 100000` with 7 `Add` took 2.1 million).
MAX_STEPS = 200_000
MAX_RENDER_SECS = 5.0  # a backstop for steps that are slow (big strings); checked every 1024 steps
MAX_DEPTH = 50

_step_budget: contextvars.ContextVar[int] = contextvars.ContextVar("template_step_budget", default=MAX_STEPS)


@contextlib.contextmanager
def budget(steps: int) -> Iterator[None]:
    """Renders in this block (this thread) stop after ``steps`` steps (at most MAX_STEPS)."""
    token = _step_budget.set(min(steps, MAX_STEPS))
    try:
        yield
    finally:
        _step_budget.reset(token)


_WS = " \t\r\n"
_KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"}
)
_NUMBER = re.compile(r"[+-]?(?:0[xXbBoO][0-9a-fA-F_]*|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)")
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


# ---------------------------------------------------------------- lexing


@dataclass(slots=True)
class _Tok:
    kind: str  # field var dot ident str num bool nil pipe lparen rparen decl assign comma
    value: Any
    space: bool  # whitespace before it: `(x).F` chains a field, `(x) .F` is another argument


@dataclass(slots=True)
class _Item:
    kind: str  # "text" or "action"
    line: int
    text: str = ""
    toks: list[_Tok] = field(default_factory=list)


class _Lines:
    def __init__(self, text: str) -> None:
        self._nl = [i for i, c in enumerate(text) if c == "\n"]

    def at(self, pos: int) -> int:
        return bisect.bisect_left(self._nl, pos) + 1


def _ident_start(c: str) -> bool:
    return c == "_" or c.isalpha()


def _ident_char(c: str) -> bool:
    return c == "_" or c.isalnum()


def _unquote(raw: str, line: int) -> str:
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = raw[i + 1] if i + 1 < len(raw) else ""
        if e in _ESCAPES and e:
            out.append(_ESCAPES[e])
            i += 2
            continue
        size = {"x": 2, "u": 4, "U": 8}.get(e)
        digits, base = (raw[i + 2 : i + 2 + size], 16) if size else (raw[i + 1 : i + 4], 8)
        want = size if size else 3
        try:
            if len(digits) != want or not e or (not size and e not in "01234567"):
                raise ValueError
            code = int(digits, base)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise ValueError
        except ValueError:
            raise TemplateError(f"invalid escape sequence in string: \\{e}", line) from None
        out.append(chr(code))
        i += 2 + want if size else 1 + want
    return "".join(out)


def _parse_number(s: str, line: int) -> int | float:
    try:
        if re.fullmatch(r"[+-]?0\d+", s):
            return int(s, 8)  # Go reads 010 as octal
        if re.fullmatch(r"[+-]?(?:0[xXbBoO][0-9a-fA-F_]+|\d[\d_]*)", s):
            return int(s, 0)
        return float(s)
    except ValueError:
        raise TemplateError(f"bad number syntax: {s!r}", line) from None


def _lex_action(text: str, i: int, line: int) -> tuple[list[_Tok], int, bool]:
    """Tokens of one action starting at `i` (after the delimiters); returns (tokens, end, trim_right)."""
    toks: list[_Tok] = []
    n = len(text)
    while True:
        start = i
        while i < n and text[i] in _WS:
            i += 1
        space = i > start
        if i >= n:
            raise TemplateError("unclosed action", line)
        if text.startswith("}}", i):
            return toks, i + 2, False
        if space and text.startswith("-}}", i):
            return toks, i + 3, True
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                if text[j] == "\n":
                    break
                j += 2 if text[j] == "\\" else 1
            if j >= n or text[j] != '"':
                raise TemplateError("unterminated quoted string", line)
            toks.append(_Tok("str", _unquote(text[i + 1 : j], line), space))
            i = j + 1
        elif c == "`":
            j = text.find("`", i + 1)
            if j < 0:
                raise TemplateError("unterminated raw quoted string", line)
            toks.append(_Tok("str", text[i + 1 : j], space))
            i = j + 1
        elif c == "'":
            j = i + 1
            while j < n and text[j] not in "'\n":
                j += 2 if text[j] == "\\" else 1
            if j >= n or text[j] != "'":
                raise TemplateError("unterminated character constant", line)
            ch = _unquote(text[i + 1 : j], line)
            if len(ch) != 1:
                raise TemplateError(f"malformed character constant: {text[i : j + 1]}", line)
            toks.append(_Tok("num", ord(ch), space))
            i = j + 1
        elif c in "|(),":
            toks.append(_Tok({"|": "pipe", "(": "lparen", ")": "rparen", ",": "comma"}[c], c, space))
            i += 1
        elif c == ":" and nxt == "=":
            toks.append(_Tok("decl", ":=", space))
            i += 2
        elif c == "=":
            toks.append(_Tok("assign", "=", space))
            i += 1
        elif c == "$":
            j = i + 1
            while j < n and _ident_char(text[j]):
                j += 1
            name = text[i:j]
            fields, j = _lex_fields(text, j)
            toks.append(_Tok("var", (name, fields), space))
            i = j
        elif c == "." and _ident_start(nxt):
            fields, i = _lex_fields(text, i)
            toks.append(_Tok("field", fields, space))
        elif c.isdigit() or (c == "." and nxt.isdigit()) or (c in "+-" and (nxt.isdigit() or nxt == ".")):
            m = _NUMBER.match(text, i)
            end = m.end() if m else i + 1
            if end < n and _ident_char(text[end]):
                raise TemplateError(f"bad number syntax: {text[i : end + 1]!r}", line)
            toks.append(_Tok("num", _parse_number(text[i:end], line), space))
            i = end
        elif c == ".":
            toks.append(_Tok("dot", ".", space))
            i += 1
        elif _ident_start(c):
            j = i
            while j < n and _ident_char(text[j]):
                j += 1
            word = text[i:j]
            if word in ("true", "false"):
                toks.append(_Tok("bool", word == "true", space))
            elif word == "nil":
                toks.append(_Tok("nil", None, space))
            else:
                toks.append(_Tok("ident", word, space))
            i = j
        else:
            raise TemplateError(f"unexpected {c!r} in action", line)


def _lex_fields(text: str, i: int) -> tuple[tuple[str, ...], int]:
    fields: list[str] = []
    n = len(text)
    while i + 1 < n and text[i] == "." and _ident_start(text[i + 1]):
        j = i + 1
        while j < n and _ident_char(text[j]):
            j += 1
        fields.append(text[i + 1 : j])
        i = j
    return tuple(fields), i


def _lex(text: str) -> list[_Item]:
    lines = _Lines(text)
    items: list[_Item] = []
    pos, n, trim_left = 0, len(text), False

    def add_text(start: int, end: int, trim_right: bool) -> None:
        seg = text[start:end]
        if trim_left:
            stripped = seg.lstrip(_WS)
            start += len(seg) - len(stripped)
            seg = stripped
        if trim_right:
            seg = seg.rstrip(_WS)
        if seg:
            items.append(_Item("text", lines.at(start), text=seg))

    while pos < n:
        j = text.find("{{", pos)
        if j < 0:
            add_text(pos, n, False)
            break
        line = lines.at(j)
        k = j + 2
        ltrim = text.startswith("-", k) and k + 1 < n and text[k + 1] in _WS
        add_text(pos, j, ltrim)
        if ltrim:
            k += 2
        if text.startswith("/*", k):
            end = text.find("*/", k + 2)
            if end < 0:
                raise TemplateError("unclosed comment", line)
            m = end + 2
            if text.startswith("}}", m):
                pos, trim_left = m + 2, False
            elif m < n and text[m] in _WS and text.startswith("-}}", m + 1):
                pos, trim_left = m + 4, True
            else:
                raise TemplateError("comment ends before closing delimiter", line)
            continue
        toks, pos, trim_left = _lex_action(text, k, line)
        items.append(_Item("action", line, toks=toks))
    return items


# ---------------------------------------------------------------- parse tree

Operand = tuple[
    Any, ...
]  # ("field", names) ("var", name, names) ("dot",) ("lit", v) ("nil",) ("ident", name) ("pipe", Pipe, names)


@dataclass(slots=True)
class _Pipe:
    line: int
    decls: list[str]
    assign: bool
    cmds: list[list[Operand]]


@dataclass(slots=True)
class _Text:
    text: str
    line: int


@dataclass(slots=True)
class _Action:
    pipe: _Pipe
    line: int


@dataclass(slots=True)
class _Block:
    kind: str  # if / with / range
    pipe: _Pipe
    line: int
    body: list[Any] = field(default_factory=list)
    else_: list[Any] | None = None


@dataclass(slots=True)
class _Jump:
    kind: str  # break / continue
    line: int


@dataclass(slots=True)
class _Frame:
    node: _Block | None
    nodes: list[Any]
    var_mark: int
    chained: bool = False  # opened by `else if`: closed by the same {{end}} as its parent
    in_else: bool = False


class _Parser:
    def __init__(self, items: list[_Item]) -> None:
        self.items = items
        self.vars = ["$"]
        self.root: list[Any] = []
        self.stack = [_Frame(None, self.root, 1)]
        self.line = 0
        self.depth = 0

    def err(self, message: str) -> TemplateError:
        return TemplateError(message, self.line)

    def parse(self) -> list[Any]:
        for item in self.items:
            self.line = item.line
            if item.kind == "text":
                self.stack[-1].nodes.append(_Text(item.text, item.line))
            else:
                self.action(item.toks)
        if len(self.stack) > 1:
            open_ = next(f for f in reversed(self.stack) if f.node is not None and not f.chained)
            assert open_.node is not None
            raise TemplateError(f"unclosed {{{{{open_.node.kind}}}}}: missing {{{{end}}}}", open_.node.line)
        return self.root

    def action(self, toks: list[_Tok]) -> None:
        if not toks:
            raise self.err("missing value for command")
        word = toks[0].value if toks[0].kind == "ident" else None
        if word in ("if", "with", "range"):
            self.open_block(word, toks, 1, chained=False)
        elif word == "else":
            self.else_(toks)
        elif word == "end":
            if len(toks) > 1:
                raise self.err("unexpected tokens after {{end}}")
            self.end()
        elif word in ("break", "continue"):
            if len(toks) > 1:
                raise self.err(f"unexpected tokens after {{{{{word}}}}}")
            if not any(f.node is not None and f.node.kind == "range" and not f.in_else for f in self.stack):
                raise self.err(f"{{{{{word}}}}} outside {{{{range}}}}")
            self.stack[-1].nodes.append(_Jump(word, self.line))
        elif word in ("define", "template", "block"):
            raise self.err(f"{{{{{word}}}}} is not supported in job definitions")
        else:
            pipe, i = self.pipeline(toks, 0, max_decls=1)
            if i != len(toks):
                raise self.err(f"unexpected {toks[i].value!r} in command")
            self.stack[-1].nodes.append(_Action(pipe, self.line))

    def open_block(self, kind: str, toks: list[_Tok], start: int, chained: bool) -> _Block:
        if len(self.stack) > MAX_DEPTH:
            raise self.err(f"nesting deeper than {MAX_DEPTH}")
        mark = len(self.vars)
        pipe, i = self.pipeline(toks, start, max_decls=2 if kind == "range" else 1)
        if i != len(toks):
            raise self.err(f"unexpected {toks[i].value!r} in {{{{{kind}}}}}")
        node = _Block(kind, pipe, self.line)
        if not chained:
            self.stack[-1].nodes.append(node)
        self.stack.append(_Frame(node, node.body, mark, chained=chained))
        return node

    def else_(self, toks: list[_Tok]) -> None:
        frame = self.stack[-1]
        if frame.node is None or frame.in_else:
            raise self.err("unexpected {{else}}")
        pipe = frame.node.pipe
        del self.vars[frame.var_mark + (0 if pipe.assign else len(pipe.decls)) :]
        frame.in_else = True
        frame.node.else_ = []
        frame.nodes = frame.node.else_
        if len(toks) == 1:
            return
        kind = toks[1].value if toks[1].kind == "ident" else None
        if kind not in ("if", "with") or (kind == "with") != (frame.node.kind == "with"):
            raise self.err("unexpected tokens after {{else}}")
        frame.node.else_.append(self.open_block(kind, toks, 2, chained=True))

    def end(self) -> None:
        if len(self.stack) == 1:
            raise self.err("unexpected {{end}}")
        while True:
            frame = self.stack.pop()
            del self.vars[frame.var_mark :]
            if not frame.chained:
                return

    def pipeline(self, toks: list[_Tok], i: int, max_decls: int, paren: bool = False) -> tuple[_Pipe, int]:
        decls: list[str] = []
        assign = False
        # Declarations: `$x :=`, `$i, $v :=`, or `$x =` (assignment to an existing variable).
        names: list[str] = []
        j = i
        while j < len(toks) and toks[j].kind == "var" and not toks[j].value[1] and len(names) < max_decls:
            names.append(toks[j].value[0])
            if j + 1 < len(toks) and toks[j + 1].kind == "comma" and len(names) < max_decls:
                j += 2
                continue
            j += 1
            break
        if names and j < len(toks) and toks[j].kind in ("decl", "assign") and not paren:
            assign = toks[j].kind == "assign"
            if assign:
                for nm in names:
                    if nm not in self.vars:
                        raise self.err(f"undefined variable {nm!r}")
            decls, i = names, j + 1
        cmds: list[list[Operand]] = []
        while True:
            cmd, i = self.command(toks, i)
            cmds.append(cmd)
            if i < len(toks) and toks[i].kind == "pipe":
                i += 1
                continue
            break
        if not assign:
            self.vars.extend(decls)
        return _Pipe(self.line, decls, assign, cmds), i

    def command(self, toks: list[_Tok], i: int) -> tuple[list[Operand], int]:
        ops: list[Operand] = []
        while i < len(toks) and toks[i].kind not in ("pipe", "rparen"):
            op, i = self.operand(toks, i)
            ops.append(op)
        if not ops:
            raise self.err("missing value for command")
        if ops[0][0] == "nil":
            raise self.err("nil is not a command")
        return ops, i

    def operand(self, toks: list[_Tok], i: int) -> tuple[Operand, int]:
        t = toks[i]
        if t.kind == "field":
            return ("field", t.value), i + 1
        if t.kind == "dot":
            return ("dot",), i + 1
        if t.kind == "var":
            name, fields = t.value
            if name not in self.vars:
                raise self.err(f"undefined variable {name!r}")
            return ("var", name, fields), i + 1
        if t.kind in ("str", "num", "bool"):
            return ("lit", t.value), i + 1
        if t.kind == "nil":
            return ("nil",), i + 1
        if t.kind == "ident":
            if t.value in _KEYWORDS:
                raise self.err(f"unexpected {{{{{t.value}}}}} in command")
            if t.value not in FUNCS and t.value not in SPECIAL_FORMS:
                raise self.err(f'function "{t.value}" not defined')
            return ("ident", t.value), i + 1
        if t.kind == "lparen":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.err(f"parentheses nested deeper than {MAX_DEPTH}")
            pipe, i = self.pipeline(toks, i + 1, max_decls=0, paren=True)
            self.depth -= 1
            if i >= len(toks) or toks[i].kind != "rparen":
                raise self.err("unclosed left paren")
            i += 1
            chain: tuple[str, ...] = ()
            if i < len(toks) and toks[i].kind == "field" and not toks[i].space:
                chain, i = toks[i].value, i + 1
            return ("pipe", pipe, chain), i
        raise self.err(f"unexpected {t.value!r} in operand")


# ---------------------------------------------------------------- execution


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_NOFINAL = object()


class _Exec:
    def __init__(self, data: Any) -> None:
        self.chunks: list[tuple[str, int, bool]] = []
        self.size = 0
        self.steps = 0
        self.max_steps = _step_budget.get()
        self.deadline = time.monotonic() + MAX_RENDER_SECS
        self.iterations = 0
        self.vars: list[list[Any]] = [["$", data]]
        self.line = 0

    def err(self, message: str) -> TemplateError:
        return TemplateError(message, self.line)

    def charge(self, steps: int, line: int) -> None:
        """Counts work; the render stops with the limit named once it has done too much."""
        before = self.steps
        self.steps += steps
        if self.steps > self.max_steps:
            raise TemplateLimitError(
                f"template takes more than {self.max_steps} steps (limit max_steps)",
                line,
                "max_steps",
                self.max_steps,
            )
        if before >> 10 != self.steps >> 10 and time.monotonic() > self.deadline:
            raise TemplateLimitError(
                f"template takes longer than {MAX_RENDER_SECS:g} s to render (limit max_render_secs)",
                line, "max_render_secs", MAX_RENDER_SECS,
            )  # fmt: skip

    def emit(self, s: str, line: int, is_text: bool) -> None:
        self.size += len(s)
        if self.size > MAX_OUTPUT:
            raise TemplateLimitError(
                f"output larger than {MAX_OUTPUT} bytes (limit max_output)", line, "max_output", MAX_OUTPUT
            )
        if s:
            self.chunks.append((s, line, is_text))

    def walk(self, nodes: list[Any], dot: Any) -> None:
        for node in nodes:
            self.charge(1, node.line)
            kind = type(node)
            if kind is _Text:
                self.emit(node.text, node.line, True)
            elif kind is _Action:
                value = self.pipe(node.pipe, dot)
                if not node.pipe.decls:
                    self.emit("<no value>" if value is MISSING else format_value(value), node.line, False)
            elif kind is _Block:
                if node.kind == "range":
                    self.range_(node, dot)
                else:
                    self.if_with(node, dot)
            else:
                raise _Break() if node.kind == "break" else _Continue()

    def if_with(self, node: _Block, dot: Any) -> None:
        mark = len(self.vars)
        try:
            value = self.pipe(node.pipe, dot)
            if truth(value):
                self.walk(node.body, value if node.kind == "with" else dot)
            elif node.else_ is not None:
                self.walk(node.else_, dot)
        finally:
            del self.vars[mark:]

    def range_(self, node: _Block, dot: Any) -> None:
        self.line = node.line
        mark = len(self.vars)
        value = self.commands(node.pipe, dot)
        if value is None or value is MISSING or value == "":  # an empty param ranges over nothing
            pairs: Any = ()
        elif isinstance(value, list | tuple):
            pairs = enumerate(value)
        elif isinstance(value, Mapping):
            try:
                keys = sorted(value)
            except TypeError:
                keys = sorted(value, key=str)
            pairs = ((k, value[k]) for k in keys)
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = ((k, k) for k in range(min(value, MAX_RANGE_ITERATIONS + 1)))
        else:
            raise self.err(f"range can't iterate over {format_value(value)[:50]}")
        ran = False
        try:
            for key, elem in pairs:
                ran = True
                self.iterations += 1
                if self.iterations > MAX_RANGE_ITERATIONS:
                    raise TemplateLimitError(
                        f"more than {MAX_RANGE_ITERATIONS} range iterations (limit max_range_iterations)",
                        node.line, "max_range_iterations", MAX_RANGE_ITERATIONS,
                    )  # fmt: skip
                del self.vars[mark:]
                decls = node.pipe.decls
                if decls:
                    vals = [elem] if len(decls) == 1 else [key, elem]
                    for name, val in zip(decls, vals, strict=False):
                        self.set_var(name, val, declare=not node.pipe.assign)
                try:
                    self.walk(node.body, elem)
                except _Continue:
                    continue
                except _Break:
                    break
            if not ran and node.else_ is not None:
                del self.vars[mark:]
                self.walk(node.else_, dot)
        finally:
            del self.vars[mark:]

    def set_var(self, name: str, value: Any, declare: bool) -> None:
        if declare:
            self.vars.append([name, value])
            return
        for slot in reversed(self.vars):
            if slot[0] == name:
                slot[1] = value
                return
        raise self.err(f"undefined variable {name!r}")

    def var(self, name: str) -> Any:
        for slot in reversed(self.vars):
            if slot[0] == name:
                return slot[1]
        raise self.err(f"undefined variable {name!r}")

    def commands(self, pipe: _Pipe, dot: Any) -> Any:
        self.line = pipe.line
        value: Any = _NOFINAL
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, value)
        return value

    def pipe(self, pipe: _Pipe, dot: Any) -> Any:
        value = self.commands(pipe, dot)
        for name in pipe.decls:
            self.set_var(name, value, declare=not pipe.assign)
        return value

    def command(self, cmd: list[Operand], dot: Any, final: Any) -> Any:
        first = cmd[0]
        if first[0] == "ident":
            return self.call(first[1], cmd[1:], dot, final)
        if len(cmd) > 1 or final is not _NOFINAL:
            raise self.err(f"can't give argument to non-function {_describe(first)}")
        return self.operand(first, dot)

    def call(self, name: str, ops: list[Operand], dot: Any, final: Any) -> Any:
        if name in SPECIAL_FORMS:
            if not ops and final is _NOFINAL:
                raise self.err(f"wrong number of args for {name}: want at least 1 got 0")
            value: Any = None
            for op in ops:
                value = self.operand(op, dot)
                if truth(value) != (name == "and"):
                    return value
            return final if final is not _NOFINAL else value
        args = [self.operand(op, dot) for op in ops]
        if final is not _NOFINAL:
            args.append(final)
        # a call is a step; Iterate pays for the items it makes before making them
        self.charge(1 + (_iterate_cost(args) if name == "Iterate" else 0), self.line)
        try:
            result = FUNCS[name](*args)
        except FuncError as e:
            raise self.err(f"error calling {name}: {e}") from None
        except TypeError:
            raise self.err(f"wrong number or type of args for {name}: got {len(args)}") from None
        except (ValueError, ArithmeticError, IndexError, KeyError) as e:
            raise self.err(f"error calling {name}: {e}") from None
        if isinstance(result, str | list | dict) and len(result) > MAX_OUTPUT:
            raise TemplateLimitError(
                f"{name} produced a value larger than {MAX_OUTPUT} (limit max_output)",
                self.line,
                "max_output",
                MAX_OUTPUT,
            )
        return result

    def operand(self, op: Operand, dot: Any) -> Any:
        kind = op[0]
        if kind == "field":
            return self.fields(dot, op[1])
        if kind == "dot":
            return dot
        if kind == "var":
            return self.fields(self.var(op[1]), op[2])
        if kind == "lit":
            return op[1]
        if kind == "nil":
            return None
        if kind == "ident":
            return self.call(op[1], [], dot, _NOFINAL)
        line = self.line
        value = self.pipe(op[1], dot)
        self.line = line
        return self.fields(value, op[2])

    def fields(self, value: Any, names: tuple[str, ...]) -> Any:
        for name in names:
            if value is None or value is MISSING:
                value = MISSING  # lenient: `.A.B` with A missing is missing, not an error
            elif isinstance(value, Mapping):
                try:
                    value = value.get(name, MISSING)
                except Exception:  # a caller-supplied Mapping misbehaving is the template's problem
                    raise self.err(f"can't evaluate field {name}") from None
            else:
                raise self.err(f"can't evaluate field {name} in type {type_name(value)}")
        return value


def _iterate_cost(args: list[Any]) -> int:
    if len(args) != 1 or isinstance(args[0], bool):
        return 0
    try:
        return max(int(args[0]), 0)  # params arrive as text: "100000" costs as much as 100000
    except (TypeError, ValueError, OverflowError):
        return 0  # not a count: Iterate itself says so


def _describe(op: Operand) -> str:
    if op[0] == "field":
        return "." + ".".join(op[1])
    if op[0] == "var":
        return ".".join([op[1], *op[2]])
    if op[0] == "lit":
        return repr(op[1])
    return op[0]


# ---------------------------------------------------------------- public API


class Template:
    """A compiled template; render it any number of times with different data."""

    __slots__ = ("_nodes", "text")

    def __init__(self, text: str, nodes: list[Any]) -> None:
        self.text = text
        self._nodes = nodes

    def _run(self, data: Mapping[str, Any] | None) -> _Exec:
        ex = _Exec({} if data is None else data)
        try:
            ex.walk(self._nodes, ex.vars[0][1])
        except TemplateError:
            raise
        except (_Break, _Continue):
            raise TemplateError("break or continue outside range", ex.line) from None
        except RecursionError:
            raise TemplateError("template nested too deeply", ex.line) from None
        except Exception as e:  # last line of defence: callers must only ever see TemplateError
            raise TemplateError(f"template failed: {type(e).__name__}: {e}", ex.line) from None
        return ex

    def render(self, data: Mapping[str, Any] | None = None) -> str:
        return "".join(c[0] for c in self._run(data).chunks)

    def render_with_line_map(self, data: Mapping[str, Any] | None = None) -> tuple[str, list[int]]:
        """Output plus, for each output line (index 0 = line 1), the source line it came from.

        Lets YAML errors found after rendering point at the line the user wrote.
        """
        chunks = self._run(data).chunks
        line_map = [chunks[0][1] if chunks else 1]
        for s, line, is_text in chunks:
            if "\n" not in s:
                continue
            if not is_text:
                line_map.extend([line] * s.count("\n"))
                continue
            offset = 0
            idx = s.find("\n")
            while idx >= 0:
                offset += 1
                line_map.append(line + offset)
                idx = s.find("\n", idx + 1)
        return "".join(c[0] for c in chunks), line_map


@dataclass(frozen=True, slots=True)
class OutputAction:
    """An action that prints: the names of the data's top-level fields it reads (`.A.B` reads
    `A`) and the function its last command calls (`shellquote` in `{{.A | shellquote}}`)."""

    line: int
    fields: tuple[str, ...]
    last_function: str | None


_CONTROL = frozenset(
    {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"}
)


def output_actions(text: str) -> list[OutputAction]:
    """The printing actions of a template, for linters; raises TemplateError when it does not lex."""
    out: list[OutputAction] = []
    for item in _lex(text):
        toks = item.toks
        if item.kind != "action" or not toks or (toks[0].kind == "ident" and toks[0].value in _CONTROL):
            continue
        if any(t.kind in ("decl", "assign") for t in toks):
            continue  # `{{$x := .A}}` prints nothing
        depth, last_start = 0, 0
        for i, t in enumerate(toks):
            depth += {"lparen": 1, "rparen": -1}.get(t.kind, 0)
            if t.kind == "pipe" and depth == 0:
                last_start = i + 1
        head = toks[last_start] if last_start < len(toks) else None
        fields = tuple(dict.fromkeys(t.value[0] for t in toks if t.kind == "field"))
        out.append(
            OutputAction(item.line, fields, head.value if head is not None and head.kind == "ident" else None)
        )
    return out


@functools.lru_cache(maxsize=512)
def _compile_cached(text: str) -> Template:
    try:
        return Template(text, _Parser(_lex(text)).parse())
    except TemplateError:
        raise
    except RecursionError:
        raise TemplateError("template nested too deeply") from None
    except Exception as e:  # never leak another exception type to callers
        raise TemplateError(f"template could not be parsed: {type(e).__name__}: {e}") from None


def compile_template(text: str) -> Template:
    if not isinstance(text, str):
        raise TemplateError(f"template must be text, not {type(text).__name__}")
    return _compile_cached(text)


def render(text: str, data: Mapping[str, Any] | None = None) -> str:
    """Render Go template `text` with `data`; text without `{{` is returned unchanged."""
    if isinstance(text, str) and "{{" not in text:
        return text
    return compile_template(text).render(data)


def render_with_line_map(text: str, data: Mapping[str, Any] | None = None) -> tuple[str, list[int]]:
    if isinstance(text, str) and "{{" not in text:
        return text, list(range(1, text.count("\n") + 2))
    return compile_template(text).render_with_line_map(data)
