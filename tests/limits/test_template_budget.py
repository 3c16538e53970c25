"""Template rendering is bounded in work: the caps are named in the error (issue 14, finding 6)."""

import pytest

from jobs.definition.errors import TemplateLimitError
from jobs.definition.parser import load_definition
from jobs.definition.template import MAX_STEPS, budget, render

HEAVY = "{{range $i := Iterate 100000}}" + "{{Add $i 1}}" * 7 + "\n{{end}}"


def test_iterate_with_seven_adds_per_step_stops_at_the_step_limit() -> None:
    with pytest.raises(TemplateLimitError) as info:
        render(HEAVY, {})
    assert info.value.limit == "max_steps"
    assert f"more than {MAX_STEPS} steps (limit max_steps)" in str(info.value)
    assert info.value.line == 1


@pytest.mark.parametrize("count", ["10000000", "99999999999999999999999"])
def test_iterate_with_a_huge_count_is_refused_before_building_the_list(count: str) -> None:
    with pytest.raises(TemplateLimitError, match="limit max_steps"):
        render(f"{{{{range Iterate {count}}}}}x{{{{end}}}}", {})
    with pytest.raises(TemplateLimitError, match="limit max_steps"):  # a param arrives as text
        render("{{range Iterate .N}}x{{end}}", {"N": count})


def test_function_calls_count_as_steps() -> None:
    # 3,000 iterations of 7 actions are 21,000 nodes; with their 21,000 calls they do not fit 30,000
    text = "{{range $i := Iterate 3000}}" + "{{Add $i 1}}" * 7 + "{{end}}"
    with budget(100_000):
        render(text, {})
    with budget(30_000), pytest.raises(TemplateLimitError, match="more than 30000 steps"):
        render(text, {})


def test_budget_narrows_and_never_widens_the_cap() -> None:
    with budget(10 * MAX_STEPS), pytest.raises(TemplateLimitError, match=f"more than {MAX_STEPS} steps"):
        render(HEAVY, {})
    render("{{range Iterate 100}}x{{end}}", {})  # the default is back after the block


def test_a_definition_over_the_limit_is_a_problem_naming_it() -> None:
    text = (
        "job_type: heavy\ntasks:\n- task_type: t\n  script:\n"
        + "    - echo "
        + HEAVY.replace("\n", "")
        + "\n"
    )
    with pytest.raises(Exception) as info:
        load_definition(text, {})
    assert "limit max_steps" in str(info.value)
