"""The template variables a definition uses, for the submit form's fields."""

from jobs.definition.template_vars import template_variables


def test_names_in_order_without_builtins_strings_comments_or_other_fields() -> None:
    text = """\
job_type: x
tasks:
- task_type: a
  script:
    - echo {{.Branch}} {{ .Count | shellquote }} {{.JobID}} {{$x := .Env}}{{$x.Inner}}
    - {{if .Debug}}set -x{{end}} "{{.Branch}}" {{ "a.b" }} {{/* .Hidden */}} {{.DateYear}}
    - {{.Region}} {{ (index .Map "k").Sub }} {{._ArtifactURL_1}}
"""
    assert template_variables(text, defined={"Region"}) == ["Branch", "Count", "Env", "Debug", "Map"]


def test_no_template_no_names() -> None:
    assert template_variables("job_type: x\ntasks: []\n") == []
