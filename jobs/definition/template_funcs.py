"""The functions a template may call: Go's text/template built-ins plus the reference's extras.

Each function takes already-evaluated arguments (plain data) and returns plain data. Anything
wrong raises FuncError, which the renderer turns into a TemplateError naming the line.
`and`/`or` are not here: they short-circuit, so the executor evaluates them itself.
"""

from __future__ import annotations

import datetime as dt
import html
import random
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .gofmt import MISSING, FormatError, format_value, sprint, sprintf, sprintln, type_name

MAX_ITERATE = 100_000  # Iterate n builds a list of n items


class FuncError(Exception):
    """A template function rejected its arguments."""


def plain(v: Any) -> Any:
    """A missing map value behaves as nil everywhere except when printed directly."""
    return None if v is MISSING else v


def truth(v: Any) -> bool:
    """Go's template truth: false, 0, nil, and empty strings/lists/maps are false."""
    if v is None or v is MISSING:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, str | list | tuple | Mapping):
        return len(v) > 0
    return True


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _as_num(v: Any) -> int | float | None:
    """Numbers as they are, numeric strings parsed (request params arrive as strings)."""
    if _is_num(v):
        return v  # type: ignore[no-any-return]
    if isinstance(v, str):
        s = v.strip()
        try:
            return int(s)
        except ValueError:
            pass
        try:
            f = float(s)
        except ValueError:
            return None
        return f if f == f else None  # NaN is not a usable number
    return None


def _to_int(v: Any, what: str) -> int:
    n = _as_num(plain(v))
    if n is None or (isinstance(n, float) and not n.is_integer()):
        raise FuncError(f"{what}: expected an integer, got {type_name(v)} {format_value(v)!r}")
    return int(n)


def _to_str(v: Any) -> str:
    v = plain(v)
    if v is None:
        return ""
    return v if isinstance(v, str) else format_value(v)


def _eq2(a: Any, b: Any) -> bool:
    a, b = plain(a), plain(b)
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if _is_num(a) or _is_num(b):
        na, nb = _as_num(a), _as_num(b)
        return na is not None and nb is not None and na == nb
    try:
        return bool(a == b)
    except Exception:  # exotic values from the caller's data: not equal rather than a crash
        return False


def _zero_like(other: Any) -> Any:
    return "" if isinstance(other, str) and _as_num(other) is None else 0


def _cmp(a: Any, b: Any, name: str) -> int:
    """Ordering for lt/le/gt/ge. A missing value acts as the other side's zero value."""
    if a is MISSING:
        a = _zero_like(b)
    if b is MISSING:
        b = _zero_like(a)
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        raise FuncError(f"{name}: invalid type for comparison: {type_name(a)} and {type_name(b)}")
    # Params arrive as strings, so "10" vs 9 (or "10" vs "9") compares as numbers when both parse.
    na, nb = _as_num(a), _as_num(b)
    if na is not None and nb is not None:
        return (na > nb) - (na < nb)
    if isinstance(a, str) and isinstance(b, str):
        return (a > b) - (a < b)
    raise FuncError(f"{name}: incompatible types for comparison: {type_name(a)} and {type_name(b)}")


def f_eq(*args: Any) -> bool:
    if len(args) < 2:
        raise FuncError("eq: missing argument for comparison")
    return any(_eq2(args[0], b) for b in args[1:])


def f_ne(a: Any, b: Any) -> bool:
    return not _eq2(a, b)


def f_len(v: Any) -> int:
    v = plain(v)
    if isinstance(v, str):
        return len(v.encode("utf-8"))  # Go's len counts bytes
    if isinstance(v, list | tuple | Mapping):
        return len(v)
    raise FuncError(f"len of type {type_name(v)}")


def f_index(item: Any, *keys: Any) -> Any:
    for k in keys:
        item = plain(item)
        if item is None:
            return MISSING
        if isinstance(item, Mapping):
            item = item.get(k, MISSING) if isinstance(k, str) else item.get(_to_str(k), MISSING)
        elif isinstance(item, list | tuple | str):
            i = _to_int(k, "index")
            if not 0 <= i < len(item):
                raise FuncError(f"index out of range: {i}")
            item = item[i]
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def f_slice(item: Any, *idx: Any) -> Any:
    item = plain(item)
    if not isinstance(item, list | tuple | str):
        raise FuncError(f"can't slice item of type {type_name(item)}")
    if len(idx) > 3:
        raise FuncError(f"too many slice indexes: {len(idx)}")
    n = [_to_int(i, "slice") for i in idx]
    lo = n[0] if n else 0
    hi = n[1] if len(n) > 1 else len(item)
    if not 0 <= lo <= hi <= len(item):
        raise FuncError(f"slice index out of range: {lo}:{hi}")
    return item[lo:hi]


def _eval_args(args: Sequence[Any]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint([plain(a) for a in args])


def f_html(*args: Any) -> str:
    s = _eval_args(args)
    return (
        s.replace("&", "&amp;")
        .replace("'", "&#39;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("\0", "\ufffd")
    )


_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"}


def f_js(*args: Any) -> str:
    out = []
    for ch in _eval_args(args):
        if ch in _JS:
            out.append(_JS[ch])
        elif ord(ch) < 0x20 or not ch.isprintable():
            out.append(f"\\u{ord(ch):04X}" if ord(ch) <= 0xFFFF else ch)
        else:
            out.append(ch)
    return "".join(out)


def f_urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(_eval_args(args), safe="")


def f_printf(fmt: Any, *args: Any) -> str:
    try:
        return sprintf(_to_str(fmt), [plain(a) for a in args])
    except FormatError as e:
        raise FuncError(str(e)) from None


def f_dict(*values: Any) -> dict[str, Any]:
    if len(values) % 2:
        raise FuncError("invalid dict call")
    out: dict[str, Any] = {}
    for i in range(0, len(values), 2):
        if not isinstance(values[i], str):
            raise FuncError("dict keys must be strings")
        out[values[i]] = plain(values[i + 1])
    return out


def f_iterate(count: Any) -> list[int]:
    n = _to_int(count, "Iterate")
    if n > MAX_ITERATE:
        raise FuncError(f"Iterate: count {n} over {MAX_ITERATE}")
    return list(range(max(n, 0)))


def f_shellquote(v: Any) -> str:
    """POSIX single-quoting: one shell word whatever the value holds (`;`, `$(...)`, quotes).
    `'` becomes `'\\''` (close the quote, an escaped quote, open again). A line break would
    split the script line in the YAML, so a value with one is printed by `printf '%b'` from
    escapes instead (trailing line breaks are lost, as in any `$(...)`)."""
    text = _to_str(v)
    if "\n" not in text and "\r" not in text:
        return _single_quoted(text)
    escaped = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return f"\"$(printf '%b' {_single_quoted(escaped)})\""


def _single_quoted(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def f_add(n: Any, plus: Any) -> int:
    return _to_int(n, "Add") + _to_int(plus, "Add")


def f_default(default: Any, value: Any = None) -> Any:
    value = plain(value)
    if value is None or value == "":
        return default
    return value


_MD_LINK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")


def _http_url(raw: str) -> str | None:
    try:
        parsed = urllib.parse.urlsplit(raw)
    except ValueError:
        return None
    return raw if parsed.scheme in ("http", "https") else None


def f_markdown_link(s: Any) -> str:
    """`[text](http://url)` (or a bare http(s) URL) to an anchor; anything else escaped."""
    s = _to_str(s)
    if not s:
        return ""
    m = _MD_LINK.search(s)
    if m is None:
        url = _http_url(s)
        if url is None:
            return html.escape(s)
        esc = html.escape(url)
        return f'<a href="{esc}" target="_blank" rel="noopener noreferrer">{esc}</a>'
    text, raw = m.group(1), m.group(2)
    url = _http_url(raw)
    if url is None or "javascript:" in raw.lower():
        return html.escape(s)
    return f'<a href="{html.escape(url)}" target="_blank" rel="noopener noreferrer">{html.escape(text)}</a>'


def f_format_time(t: Any) -> str:
    t = plain(t)
    if t is None or t == "" or t == 0:
        return "—"
    if isinstance(t, str):
        try:
            t = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:
            raise FuncError(f"formatTime: not a time: {t!r}") from None
    elif _is_num(t):
        try:
            t = dt.datetime.fromtimestamp(t, tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise FuncError(f"formatTime: not a time: {t!r}") from None
    if isinstance(t, dt.datetime | dt.date):
        return (
            t.strftime("%Y-%m-%d %H:%M:%S") if isinstance(t, dt.datetime) else t.strftime("%Y-%m-%d 00:00:00")
        )
    raise FuncError(f"formatTime: not a time: {type_name(t)}")


def f_percent100(received: Any, required: Any) -> int:
    got, need = _to_int(received, "Percent100"), _to_int(required, "Percent100")
    if need <= 0:
        return 100
    return min(got * 100 // need, 100)


def f_random(lo: Any, hi: Any) -> int:
    a, b = _to_int(lo, "Random"), _to_int(hi, "Random")
    if b <= a:
        raise FuncError(f"Random: max {b} must be greater than min {a}")
    return random.randrange(a, b)


def _s2(fn: Callable[[str, str], Any]) -> Callable[..., Any]:
    def call(a: Any, b: Any) -> Any:
        return fn(_to_str(a), _to_str(b))

    return call


def _s1(fn: Callable[[str], Any]) -> Callable[..., Any]:
    def call(a: Any) -> Any:
        return fn(_to_str(a))

    return call


def f_replace(s: Any, old: Any, new: Any) -> str:
    # The reference's replace is strings.ReplaceAll(s, old, new): the subject comes first.
    return _to_str(s).replace(_to_str(old), _to_str(new))


def _not(v: Any) -> bool:
    return not truth(v)


def _lt(a: Any, b: Any) -> bool:
    return _cmp(a, b, "lt") < 0


def _le(a: Any, b: Any) -> bool:
    return _cmp(a, b, "le") <= 0


def _gt(a: Any, b: Any) -> bool:
    return _cmp(a, b, "gt") > 0


def _ge(a: Any, b: Any) -> bool:
    return _cmp(a, b, "ge") >= 0


FUNCS: dict[str, Callable[..., Any]] = {
    # Go built-ins
    "not": _not,
    "eq": f_eq,
    "ne": f_ne,
    "lt": _lt,
    "le": _le,
    "gt": _gt,
    "ge": _ge,
    "len": f_len,
    "index": f_index,
    "slice": f_slice,
    "print": lambda *a: sprint([plain(x) for x in a]),
    "println": lambda *a: sprintln([plain(x) for x in a]),
    "printf": f_printf,
    "html": f_html,
    "js": f_js,
    "urlquery": f_urlquery,
    # the reference's additions
    "Dict": f_dict,
    "dict": f_dict,
    "Iterate": f_iterate,
    "Add": f_add,
    "default": f_default,
    "trimPrefix": _s2(lambda s, p: s.removeprefix(p)),
    "trimSuffix": _s2(lambda s, p: s.removesuffix(p)),
    "hasPrefix": _s2(lambda s, p: s.startswith(p)),
    "hasSuffix": _s2(lambda s, p: s.endswith(p)),
    "contains": _s2(lambda s, sub: sub in s),
    "lower": _s1(str.lower),
    "upper": _s1(str.upper),
    "replace": f_replace,
    # In text/template the reference's Unescape only marks text as safe HTML: the text is unchanged.
    "Unescape": _s1(lambda s: s),
    "MarkdownLink": f_markdown_link,
    "formatTime": f_format_time,
    "FormatTime": f_format_time,
    "Percent100": f_percent100,
    "Random": f_random,
    # ours: a param made safe for a script line, `{{.Branch | shellquote}}`
    "shellquote": f_shellquote,
}

# Names the executor handles itself (lazy evaluation).
SPECIAL_FORMS = frozenset({"and", "or"})
