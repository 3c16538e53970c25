"""Go's fmt for template values: %v printing, Sprint/Sprintln and a Printf verb translator.

Templates written for the Go reference print values the Go way (`true`, `[a b]`, `map[k:v]`,
`1e+06`), so we reproduce that instead of Python's str().
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

MAX_WIDTH = 10_000  # printf width/precision cap: "%0999999999d" must not allocate gigabytes


class _Missing:
    """A map lookup that found nothing (Go's invalid reflect.Value): prints `<no value>`."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()


class FormatError(ValueError):
    """printf was asked for something unreasonable (e.g. a gigantic width)."""


def type_name(v: Any) -> str:
    if v is None or v is MISSING:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Mapping):
        return "map[string]interface {}"
    if isinstance(v, list | tuple):
        return "[]interface {}"
    if isinstance(v, dt.datetime):
        return "time.Time"
    return type(v).__name__


def format_float(f: float, verb: str = "g", prec: int | None = None) -> str:  # noqa: C901
    """Go's %v / %g for float64: shortest digits, exponent form when exp < -4 or exp >= 6."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if prec is not None:
        return _py_exp_to_go(format(f, f".{prec}{verb}"))
    sign, digits, exp = Decimal(repr(f)).normalize().as_tuple()
    assert isinstance(exp, int)
    ds = "".join(map(str, digits)) or "0"
    if ds == "0":
        return "-0" if sign else "0"
    point = len(ds) + exp  # position of the decimal point relative to the digits
    x = point - 1
    if x < -4 or x >= 6:  # strconv 'g' with shortest precision decides at 6 digits
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        out = f"{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    elif point <= 0:
        out = "0." + "0" * (-point) + ds
    elif point >= len(ds):
        out = ds + "0" * (point - len(ds))
    else:
        out = ds[:point] + "." + ds[point:]
    return ("-" if sign else "") + out


def _py_exp_to_go(s: str) -> str:
    # Python writes 1e+06 as Go does; only "inf"/"nan" differ.
    return {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}.get(s, s)


def format_value(v: Any) -> str:
    """Go's %v."""
    if v is None or v is MISSING:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float(v, "v")
    if isinstance(v, str):
        return v
    if isinstance(v, Mapping):
        items = sorted(v.items(), key=lambda kv: str(kv[0]))
        return "map[" + " ".join(f"{format_value(k)}:{format_value(x)}" for k, x in items) + "]"
    if isinstance(v, list | tuple):
        return "[" + " ".join(format_value(x) for x in v) + "]"
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ")
    return str(v)


def sprint(args: Sequence[Any]) -> str:
    """fmt.Sprint: a space between operands when neither side is a string."""
    out: list[str] = []
    prev_str = True
    for i, a in enumerate(args):
        is_str = isinstance(a, str)
        if i > 0 and not is_str and not prev_str:
            out.append(" ")
        out.append(format_value(a))
        prev_str = is_str
    return "".join(out)


def sprintln(args: Sequence[Any]) -> str:
    return " ".join(format_value(a) for a in args) + "\n"


def go_quote(s: str) -> str:
    """strconv.Quote."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


_SIMPLE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}

_VERB = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?([a-zA-Z%])")


def _bad(verb: str, v: Any) -> str:
    if v is None or v is MISSING:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(v)}={format_value(v)})"


def _pad(s: str, flags: str, width: int | None, zero_ok: bool = False) -> str:
    if width is None or len(s) >= width:
        return s
    if "-" in flags:
        return s.ljust(width)
    if "0" in flags and zero_ok:
        sign = s[0] if s[:1] in "+- " and s[:1] else ""
        body = s[len(sign) :]
        return sign + body.rjust(width - len(sign), "0")
    return s.rjust(width)


def _sign(s: str, n: float, flags: str) -> str:
    if n >= 0 and not s.startswith("-"):
        if "+" in flags:
            return "+" + s
        if " " in flags:
            return " " + s
    return s


def _one(verb: str, flags: str, width: int | None, prec: int | None, v: Any) -> str:
    is_num = isinstance(v, int | float) and not isinstance(v, bool)
    if verb == "v":
        if isinstance(v, str) and "#" in flags:
            return _pad(go_quote(v), flags, width)
        return _pad(format_value(v), flags, width, zero_ok=is_num)
    if verb == "T":
        return _pad(type_name(v), flags, width)
    if verb == "s":
        if isinstance(v, str):
            return _pad(v if prec is None else v[:prec], flags, width)
        if isinstance(v, list | tuple | Mapping):
            return _pad(format_value(v), flags, width)
        return _bad(verb, v)
    if verb == "q":
        if isinstance(v, str):
            return _pad(go_quote(v), flags, width)
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 0x10FFFF:
            return _pad("'" + go_quote(chr(v))[1:-1].replace("'", "\\'") + "'", flags, width)
        return _bad(verb, v)
    if verb == "t":
        return _pad(format_value(v), flags, width) if isinstance(v, bool) else _bad(verb, v)
    if verb in "dboxXcU":
        if isinstance(v, int) and not isinstance(v, bool):
            if verb == "c":
                return _pad(chr(v) if 0 <= v <= 0x10FFFF else "\ufffd", flags, width)
            if verb == "U":
                return _pad(f"U+{v:04X}", flags, width)
            base = {"d": "d", "b": "b", "o": "o", "x": "x", "X": "X"}[verb]
            s = format(abs(v), base)
            if "#" in flags and verb in "xX":
                s = ("0x" if verb == "x" else "0X") + s
            if prec is not None:
                s = s.rjust(prec, "0")
            s = ("-" if v < 0 else "") + s
            return _pad(_sign(s, v, flags), flags, width, zero_ok=prec is None)
        if isinstance(v, str) and verb in "xX":
            s = v.encode("utf-8").hex()
            return _pad(s.upper() if verb == "X" else s, flags, width)
        return _bad(verb, v)
    if verb in "feEgGF":
        if isinstance(v, float):
            f = float(v)
            if verb in "gG" and prec is None:
                s = format_float(f, "g")
                s = s.upper() if verb == "G" else s
            else:
                py = "f" if verb == "F" else verb
                s = _py_exp_to_go(format(f, f".{6 if prec is None else prec}{py}"))
            return _pad(_sign(s, f, flags), flags, width, zero_ok=True)
        return _bad(verb, v)
    return _bad(verb, v)


def sprintf(fmt: str, args: Sequence[Any]) -> str:
    """fmt.Sprintf over the verbs templates use; mistakes print Go's %!verb(...) markers."""
    out: list[str] = []
    argi = 0
    pos = 0
    while True:
        j = fmt.find("%", pos)
        if j < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:j])
        m = _VERB.match(fmt, j)
        if not m:
            out.append("%!(NOVERB)")
            break
        flags, w, p, verb = m.groups()
        pos = m.end()
        if verb == "%":
            out.append("%")
            continue
        width: int | None = None
        prec: int | None = None
        if w == "*":
            if argi < len(args) and isinstance(args[argi], int):
                width = args[argi]
            argi += 1
        elif w:
            width = int(w)
        if p == "*":
            if argi < len(args) and isinstance(args[argi], int):
                prec = args[argi]
            argi += 1
        elif p is not None:
            prec = int(p) if p else 0
        if (width is not None and abs(width) > MAX_WIDTH) or (prec is not None and abs(prec) > MAX_WIDTH):
            raise FormatError(f"printf width or precision over {MAX_WIDTH}")
        if width is not None and width < 0:
            flags, width = flags + "-", -width
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_one(verb, flags, width, prec, args[argi]))
        argi += 1
    if argi < len(args):
        extra = ", ".join(f"{type_name(a)}={format_value(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
