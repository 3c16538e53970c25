"""Shell safety in the pure core: `shellquote` and the upload linter (issue 14, finding 7)."""

import subprocess

import pytest

from jobs.definition.lint import shell_warnings
from jobs.definition.template import render

NASTY = [
    "main; touch pwned",
    "$(touch pwned)",
    "`touch pwned`",
    "it's 'quoted' \"twice\"",
    "a\nb; touch pwned",
    "trailing\\",
    "\\c stops printf %b",
    "",
]


@pytest.mark.parametrize("value", NASTY)
def test_shellquote_makes_one_word_of_any_value(value: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    line = render("printf '%s' {{.Branch | shellquote}}", {"Branch": value})
    assert "\n" not in line  # a line break would add a script line in the YAML
    out = subprocess.run(["sh", "-c", line], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout == value
    assert not (tmp_path / "pwned").exists()


def test_shellquote_as_a_function_and_on_numbers_and_missing_values() -> None:
    assert render("{{shellquote .N}} {{shellquote .Missing}}", {"N": 3}) == "'3' ''"


DEFINITION = """\
job_type: lint-me
required_params: [Branch]
tasks:
- task_type: build
  script:
    - echo {{.Branch}}
    - echo {{.Branch | shellquote}} "$Branch" {{.JobID}} {{shellquote .Branch}}
    - git checkout {{printf "%q" .Branch}}
  environment:
    BRANCH: "{{.Branch}}"
  on_completed: deploy
- task_type: deploy
  before_script: ["echo {{.Target}}"]
  script:
  - "{{if .Branch}}echo yes{{end}}"
  - echo {{ .build_ArtifactURL_1 }}
"""


def test_lint_names_task_line_and_param_of_each_bare_paste() -> None:
    assert shell_warnings(DEFINITION, ["Branch"]) == [
        "task 'build': line 6: param 'Branch' is pasted into the script unquoted; "
        'use "$Branch" (the environment) or {{.Branch | shellquote}}',
        "task 'build': line 8: param 'Branch' is pasted into the script unquoted; "
        'use "$Branch" (the environment) or {{.Branch | shellquote}}',
        "task 'deploy': line 13: param 'Target' is pasted into the script unquoted; "
        'use "$Target" (the environment) or {{.Target | shellquote}}',
    ]


def test_lint_is_quiet_for_safe_forms_and_bad_templates() -> None:
    safe = (
        DEFINITION.replace("echo {{.Branch}}", 'echo "$Branch"')
        .replace('{{printf "%q" .Branch}}', "{{.Branch | shellquote}}")
        .replace('["echo {{.Target}}"]', '["echo \\"$Target\\""]')
    )
    assert shell_warnings(safe, ["Branch"]) == []
    assert shell_warnings("job_type: x\ntasks:\n- task_type: t\n  script: [echo {{.X]\n") == []
