"""The Go text/template renderer: syntax, built-ins, reference functions, errors, limits."""

from __future__ import annotations

import contextlib
import random

import pytest

from jobs.definition.template import MAX_OUTPUT, TemplateError, compile_template, render, render_with_line_map

DATA = {
    "Name": "world",
    "Num": 5,
    "NumStr": "5",
    "Zero": 0,
    "Empty": "",
    "List": ["a", "b", "c"],
    "Nums": [3, 1, 2],
    "Map": {"k": "v", "nested": {"deep": "x"}},
    "T": True,
    "F": False,
    "Nil": None,
    "Float": 2.5,
    "Big": 1234567.0,
    "Branch": "feature/x",
}

RENDER_CASES = [
    # fields and variables
    ("plain text", "plain text"),
    ("{{.Name}}", "world"),
    ("Hello {{ .Name }}!", "Hello world!"),
    ("{{.Map.k}}", "v"),
    ("{{.Map.nested.deep}}", "x"),
    ("{{.Missing}}", "<no value>"),
    ("{{.Map.missing}}", "<no value>"),
    ("{{.Missing.Deeper}}", "<no value>"),
    ("{{.Nil}}", "<nil>"),
    ("{{.List}}", "[a b c]"),
    ("{{.Map.nested}}", "map[deep:x]"),
    ("{{.T}} {{.F}}", "true false"),
    ("{{.Float}} {{.Big}}", "2.5 1.234567e+06"),
    ("{{$x := .Name}}{{$x}}", "world"),
    ("{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
    ("{{$.Name}}", "world"),
    ("{{with .Map}}{{$.Name}}-{{.k}}{{end}}", "world-v"),
    # literals
    ('{{"a\\tb"}}', "a\tb"),
    ('{{"\\u00e9\\x41\\101"}}', "éAA"),
    ("{{`raw\\n`}}", "raw\\n"),
    ("{{42}} {{-3}} {{0x10}} {{1.5}} {{1e3}}", "42 -3 16 1.5 1000"),
    ("{{'a'}}", "97"),
    ("{{true}} {{false}}", "true false"),
    # if / else if / else
    ("{{if .T}}yes{{end}}", "yes"),
    ("{{if .F}}yes{{else}}no{{end}}", "no"),
    ("{{if .Zero}}a{{else if .Empty}}b{{else if .Num}}c{{else}}d{{end}}", "c"),
    ("{{if .Missing}}a{{else}}b{{end}}", "b"),
    ("{{if .List}}has{{end}}", "has"),
    ("{{if .Nil}}x{{else}}nil is false{{end}}", "nil is false"),
    ("{{if .T}}{{if .F}}1{{else}}2{{end}}{{end}}", "2"),
    ("{{if $v := .Name}}{{$v}}{{end}}", "world"),
    # range
    ("{{range .List}}{{.}},{{end}}", "a,b,c,"),
    ("{{range $i, $v := .List}}{{$i}}:{{$v}} {{end}}", "0:a 1:b 2:c "),
    ("{{range $v := .List}}{{$v}}{{end}}", "abc"),
    ("{{range $k, $v := .Map}}{{$k}};{{end}}", "k;nested;"),
    ("{{range .Missing}}x{{else}}none{{end}}", "none"),
    ("{{range .Empty}}x{{else}}none{{end}}", "none"),
    ("{{range 3}}{{.}}{{end}}", "012"),
    ('{{range .List}}{{if eq . "b"}}{{continue}}{{end}}{{.}}{{end}}', "ac"),
    ('{{range .List}}{{if eq . "b"}}{{break}}{{end}}{{.}}{{end}}', "a"),
    ("{{range $i := Iterate 3}}{{range Iterate 2}}x{{end}}{{end}}", "xxxxxx"),
    # with
    ("{{with .Name}}{{.}}{{end}}", "world"),
    ("{{with .Empty}}x{{else}}empty{{end}}", "empty"),
    ("{{with $m := .Map}}{{$m.k}}{{end}}", "v"),
    # comments and trimming
    ("a{{/* note */}}b", "ab"),
    ("a  {{- /* note */ -}}  b", "ab"),
    ("a \n {{- .Name -}} \n b", "aworldb"),
    ("{{- .Name}}  ", "world  "),
    ("x\n{{- if .T}}\n  y\n{{- end}}\n", "x\n  y\n"),
    # pipelines and parentheses
    ('{{.Name | printf "%s!"}}', "world!"),
    ('{{.Name | upper | printf "<%s>"}}', "<WORLD>"),
    ("{{(index .List 1)}}", "b"),
    ('{{(index .Map "nested").deep}}', "x"),
    ("{{len (slice .List 1)}}", "2"),
    # comparisons
    ('{{eq .Name "world"}}', "true"),
    ('{{eq .Name "x" "y" "world"}}', "true"),
    ('{{ne .Missing "main"}}', "true"),
    ('{{eq .Missing "main"}}', "false"),
    ("{{eq .Missing nil}}", "true"),
    ("{{lt .Num 10}} {{le .Num 5}} {{gt .Num 5}} {{ge .Num 5}}", "true true false true"),
    ("{{lt .NumStr 10}} {{gt .NumStr 3}}", "true true"),
    ('{{lt "10" "9"}}', "false"),
    ('{{lt "abc" "abd"}}', "true"),
    ("{{lt .Missing 3}}", "true"),
    ("{{eq .NumStr 5}}", "true"),
    ("{{eq .Float 2.5}}", "true"),
    ("{{eq .T true}}", "true"),
    # and / or / not
    ("{{and 1 2}}", "2"),
    ("{{and 0 .Missing.x}}", "0"),
    ('{{or "" .Name}}', "world"),
    ("{{or 0 false}}", "false"),
    ("{{not .T}} {{not .Empty}}", "false true"),
    ("{{if and .T (not .F)}}ok{{end}}", "ok"),
    # len / index / slice
    ('{{len .List}} {{len .Map}} {{len .Name}} {{len "é"}}', "3 2 5 2"),
    ('{{index .Map "k"}} {{index .List 0}} {{index .Map "nope"}}', "v a <no value>"),
    ('{{index .Map "nested" "deep"}}', "x"),
    ("{{slice .List 1 2}} {{slice .Name 0 3}}", "[b] wor"),
    # print family
    ('{{print "a" 1 2 "b"}}', "a1 2b"),
    ('{{println "a" 1}}', "a 1\n"),
    ('{{printf "%s-%d-%v-%q" "a" 3 .List "q"}}', 'a-3-[a b c]-"q"'),
    (
        '{{printf "%.2f|%f|%x|%X|%t|%%|%5d|%-3s|%03d" 3.14159 1.5 255 255 true 7 "a" 7}}',
        "3.14|1.500000|ff|FF|true|%|    7|a  |007",
    ),
    ('{{printf "%d"}}', "%!d(MISSING)"),
    ('{{printf "%d" "x"}}', "%!d(string=x)"),
    ('{{printf "a" 1}}', "a%!(EXTRA int=1)"),
    ('{{printf "%v %v" .Nil .Map}}', "<nil> map[k:v nested:map[deep:x]]"),
    # escaping
    ('{{html "<a href=\'x\'>&\\""}}', "&lt;a href=&#39;x&#39;&gt;&amp;&#34;"),
    ('{{js "it\'s <b>"}}', "it\\'s \\u003Cb\\u003E"),
    ('{{urlquery "a b&c=d/é"}}', "a+b%26c%3Dd%2F%C3%A9"),
    # reference functions
    ('{{$d := Dict "a" 1 "b" "x"}}{{$d.b}}{{index $d "a"}}', "x1"),
    ("{{Iterate 4}}", "[0 1 2 3]"),
    ("{{range $i := Iterate 2}}{{Add $i 10}},{{end}}", "10,11,"),
    ('{{default "dflt" .Missing}}|{{default "dflt" .Empty}}|{{default "dflt" .Name}}', "dflt|dflt|world"),
    ('{{.Missing | default "d"}}', "d"),
    ('{{trimPrefix .Branch "feature/"}} {{trimSuffix "a.txt" ".txt"}}', "x a"),
    ('{{hasPrefix .Branch "feature"}} {{hasSuffix .Branch "y"}}', "true false"),
    ('{{lower "AbC"}} {{upper "AbC"}} {{contains .Branch "ture"}}', "abc ABC true"),
    ('{{replace "banana" "a" "o"}}', "bonono"),
    ('{{Unescape "&lt;b&gt;"}}', "&lt;b&gt;"),
    (
        '{{MarkdownLink "[docs](https://x.io/a)"}}',
        '<a href="https://x.io/a" target="_blank" rel="noopener noreferrer">docs</a>',
    ),
    (
        '{{MarkdownLink "https://x.io"}}',
        '<a href="https://x.io" target="_blank" rel="noopener noreferrer">https://x.io</a>',
    ),
    ('{{MarkdownLink "[x](javascript:alert(1))"}}', "[x](javascript:alert(1))"),
    ('{{MarkdownLink "<b>"}}', "&lt;b&gt;"),
    ('{{formatTime "2024-01-02T03:04:05Z"}} {{FormatTime .Missing}}', "2024-01-02 03:04:05 —"),
    ("{{Percent100 1 4}} {{Percent100 9 4}} {{Percent100 1 0}}", "25 100 100"),
    ("{{Random 3 4}}", "3"),
]


@pytest.mark.parametrize(("text", "expected"), RENDER_CASES)
def test_render(text: str, expected: str) -> None:
    assert render(text, DATA) == expected


def test_random_in_range() -> None:
    values = {int(render("{{Random 0 5}}", {})) for _ in range(200)}
    assert values <= set(range(5)) and len(values) > 1


def test_no_braces_fast_path_returns_same_object() -> None:
    text = "no template here: {x}"
    assert render(text, {}) is text


def test_compile_is_cached_and_reusable() -> None:
    t = compile_template("{{.A}}")
    assert t is compile_template("{{.A}}")
    assert t.render({"A": 1}) == "1" and t.render({"A": 2}) == "2"


def test_no_data_means_missing() -> None:
    assert render("{{.X}}") == "<no value>"


def test_sandbox_no_attribute_access() -> None:
    class Obj:
        secret = "s"

    with pytest.raises(TemplateError):
        render("{{.Obj.secret}}", {"Obj": Obj()})
    with pytest.raises(TemplateError):
        render("{{.Name.__class__}}", {"Name": "x"})
    assert render("{{.__class__}}", {}) == "<no value>"


ERROR_CASES = [
    ("{{if .A}}x", 1, "unclosed {{if}}"),
    ("a\nb\n{{range .A}}x", 3, "unclosed {{range}}"),
    ("{{with .A}}", 1, "unclosed {{with}}"),
    ("line1\n{{end}}", 2, "unexpected {{end}}"),
    ("{{else}}", 1, "unexpected {{else}}"),
    ("{{if 1}}{{else}}{{else}}{{end}}", 1, "unexpected {{else}}"),
    ("x\n\n{{.A", 3, "unclosed action"),
    ("{{nosuch 1}}", 1, 'function "nosuch" not defined'),
    ("a\n{{$x}}", 2, "undefined variable"),
    ("{{$x = 1}}", 1, "undefined variable"),
    ("{{break}}", 1, "outside {{range}}"),
    ("{{continue}}", 1, "outside {{range}}"),
    ('{{"abc}}', 1, "unterminated quoted string"),
    ("{{`abc}}", 1, "unterminated raw"),
    ("{{/* abc }}", 1, "unclosed comment"),
    ("{{/* a */ x}}", 1, "comment ends before closing delimiter"),
    ("{{}}", 1, "missing value for command"),
    ("{{nil}}", 1, "nil is not a command"),
    ("{{(1}}", 1, "unclosed left paren"),
    ("{{.A 1}}", 1, "can't give argument to non-function"),
    ("{{1 | 2}}", 1, "can't give argument"),
    ("{{3x}}", 1, "bad number syntax"),
    ("{{#}}", 1, "unexpected '#'"),
    ('{{"\\q"}}', 1, "invalid escape"),
    ('{{define "x"}}{{end}}', 1, "not supported"),
    ('{{template "x"}}', 1, "not supported"),
    ("{{if 1 2 3}}{{end}}", 1, "can't give argument"),
    ("{{Random 5 5}}", 1, "Random"),
    ("x\n{{index .L 9}}", 2, "index out of range"),
    ("{{len 3}}", 1, "len of type int"),
    ("{{lt true 1}}", 1, "comparison"),
    ('{{lt "abc" 1}}', 1, "incompatible types"),
    ("{{.S.Field}}", 1, "can't evaluate field Field in type string"),
    ("{{range .S}}{{end}}", 1, "range can't iterate"),
    ('{{Dict "a"}}', 1, "invalid dict call"),
    ("{{Dict 1 2}}", 1, "dict keys must be strings"),
    ("{{Add 1}}", 1, "wrong number"),
    ('{{Iterate "x"}}', 1, "expected an integer"),
    ('{{printf "%0999999d" 1}}', 1, "width or precision"),
    ("{{and}}", 1, "wrong number of args"),
    ("{{else if 1}}", 1, "unexpected {{else}}"),
    ("{{with 1}}{{else if 1}}{{end}}", 1, "unexpected tokens after {{else}}"),
    ("{{end 1}}", 1, "unexpected tokens after {{end}}"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), ERROR_CASES)
def test_errors_name_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(text, {"L": [1], "S": "s"})
    assert info.value.line == line, str(info.value)
    assert fragment in info.value.message, str(info.value)
    assert str(info.value).startswith(f"template: line {line}:")


def test_limits_output_size() -> None:
    with pytest.raises(TemplateError, match="output larger"):
        render("{{range Iterate 100000}}{{$.S}}{{end}}", {"S": "x" * 200})
    assert MAX_OUTPUT >= 10 * 1024 * 1024


def test_limits_range_iterations() -> None:
    with pytest.raises(TemplateError, match="range iterations"):
        render("{{range Iterate 1000}}{{range Iterate 1000}}{{end}}{{end}}", {})


def test_limits_iterate_size() -> None:
    with pytest.raises(TemplateError):
        render("{{Iterate 100000000}}", {})


def test_limits_exponential_string_growth() -> None:
    text = '{{$x := "aaaaaaaaaa"}}' + '{{$x = replace $x "a" $x}}' * 12 + "{{len $x}}"
    with pytest.raises(TemplateError):
        render(text, {})


def test_limits_nesting_depth() -> None:
    with pytest.raises(TemplateError, match="nest"):
        render("{{if 1}}" * 200 + "{{end}}" * 200, {})
    with pytest.raises(TemplateError, match="nested"):
        render("{{" + "(" * 500 + "1" + ")" * 500 + "}}", {})


def test_line_map_follows_source_lines() -> None:
    text = "a: 1\n{{if .X}}\nb: 2\n{{else}}\nc: 3\n{{end}}\nd: 4\n"
    out, line_map = render_with_line_map(text, {"X": False})
    lines = out.split("\n")
    assert lines[line_map.index(5)] == "c: 3"
    assert line_map[lines.index("d: 4")] == 7


def test_fuzz_only_template_errors() -> None:
    rng = random.Random(1234)
    alphabet = [
        "{{",
        "}}",
        "{{-",
        "-}}",
        " ",
        ".",
        "A",
        "$x",
        ":=",
        "=",
        "|",
        "(",
        ")",
        '"',
        "`",
        "'",
        "if",
        "else",
        "end",
        "range",
        "with",
        "break",
        "printf",
        "eq",
        "lt",
        "1",
        "-2",
        "0x",
        "/*",
        "*/",
        "\n",
        "nil",
        "index",
        "len",
        "and",
        "or",
        ",",
        "\\",
        "Iterate",
        "slice",
        "%d",
        "e9",
        "Dict",
    ]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
        with contextlib.suppress(TemplateError):
            render(text, {"A": [1, 2], "x": {"y": "z"}})


def test_fuzz_random_bytes() -> None:
    rng = random.Random(99)
    for _ in range(300):
        text = "{{" + bytes(rng.randrange(256) for _ in range(rng.randint(0, 60))).decode("latin-1") + "}}"
        with contextlib.suppress(TemplateError):
            render(text, {})


def test_non_text_input_is_template_error() -> None:
    with pytest.raises(TemplateError):
        compile_template(b"{{.A}}")  # type: ignore[arg-type]
