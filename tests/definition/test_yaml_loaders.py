"""libyaml reads job definitions only where the pure loader would read the same thing: the values,
their lines and texts, and every refusal's message must not depend on which loader ran."""

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobs.definition import yamlsafe

pytestmark = pytest.mark.skipif(not yamlsafe.LIBYAML, reason="PyYAML built without libyaml")

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def pure(text: str) -> tuple[Any, list[yamlsafe.Problem]]:
    return yamlsafe.read_with_pure_loader(text)


def shape(value: Any) -> Any:
    """Everything a loaded value carries: the value, the lines and the texts as written."""
    if isinstance(value, yamlsafe.LDict):
        return (
            "map",
            value.line,
            {k: shape(v) for k, v in value.items()},
            dict(value.lines),
            dict(value.texts),
        )
    if isinstance(value, yamlsafe.LList):
        return ("seq", value.line, [shape(v) for v in value], list(value.lines), list(value.texts))
    return (type(value).__name__, value)


def outcome(result: tuple[Any, list[yamlsafe.Problem]]) -> Any:
    value, problems = result
    return shape(value), [(p.message, p.line) for p in problems]


def test_examples_load_alike_and_through_libyaml() -> None:
    assert len(EXAMPLES) >= 10
    fast = 0
    for path in EXAMPLES:
        text = path.read_text()  # as written: some are valid YAML only once rendered
        result = yamlsafe.load_yaml(text)
        assert outcome(result) == outcome(pure(text)), path.name
        if not result[1]:
            assert yamlsafe.read_with_libyaml(text) is not None, (
                f"{path.name} should not need the pure loader"
            )
            fast += 1
    assert fast >= 5


def test_mutated_documents_load_alike() -> None:
    """Characters inserted, deleted and copied at random: the loaders agree on each result, accepted
    or refused (a few thousand such documents were compared when libyaml was brought in)."""
    rnd = random.Random(7)
    texts = [p.read_text() for p in EXAMPLES]
    alphabet = list(" \t\n\r:-#&*!|>'\"{}[],%@`?\\\x00\x85\u2028\ufeff\x7f\x1b\ud800é0aTtrue~.")
    accepted = 0
    for _ in range(600):
        chars = list(rnd.choice(texts))
        for _ in range(rnd.randint(1, 4)):
            pos, op = rnd.randrange(len(chars) + 1), rnd.random()
            if op < 0.4:
                chars.insert(pos, rnd.choice(alphabet))
            elif op < 0.7 and chars:
                chars.pop(min(pos, len(chars) - 1))
            else:
                chars[pos:pos] = chars[rnd.randrange(len(chars)) :][: rnd.randint(1, 30)]
        text = "".join(chars)
        result = yamlsafe.load_yaml(text)
        assert outcome(result) == outcome(pure(text)), repr(text)
        accepted += not result[1]
    assert accepted > 50  # the comparison covered accepted documents, not only refusals


@pytest.mark.parametrize(
    "text",
    [
        "job_type: a\ntasks:\n- task_type: t\n  scr\tipt: [x]\n",  # libyaml takes a tab in a plain scalar
        "job_type: a\n\ufeff# a byte order mark inside\ntasks: []\n",
        "vars: {a: {{.B?c}}}\n",  # libyaml takes '?' in a flow plain scalar, and the builder refuses its keys
        "a: 1\na: 2\n",  # a duplicate key: the builder's own refusal
        "a: '\ud800'\n",  # cannot be encoded for libyaml
    ],
)
def test_what_libyaml_would_read_differently_gets_the_pure_loaders_answer(text: str) -> None:
    value, problems = yamlsafe.load_yaml(text)
    assert problems, "each of these is refused"
    assert outcome((value, problems)) == outcome(pure(text))
    if "\t" not in text and "\ufeff" not in text:
        assert yamlsafe.read_with_libyaml(text) is None  # libyaml's reading was set aside


def test_libyaml_would_take_a_tab_the_pure_loader_refuses() -> None:
    """Why documents with a tab skip libyaml: it reads this one without a word."""
    text = "job_type: a\nscr\tipt: x\n"
    loader = yaml.CSafeLoader(text)
    try:
        assert loader.get_single_node() is not None
    finally:
        loader.dispose()
    _, problems = yamlsafe.load_yaml(text)
    assert problems and "'\\t'" in problems[0].message and problems[0].line == 2
