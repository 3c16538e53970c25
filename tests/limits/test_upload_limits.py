"""A definition whose template passes no render budget is refused at upload, the limit named."""

from tests.conftest import upload


def test_upload_of_a_template_over_the_step_limit_is_a_400_naming_it(api):  # type: ignore[no-untyped-def]
    heavy = (
        "job_type: too-heavy\ntasks:\n- task_type: t\n  script:\n"
        "    - echo {{range $i := Iterate 100000}}" + "{{Add $i 1}}" * 7 + "{{end}}\n"
    )
    resp = upload(api, heavy)
    assert resp.status_code == 400
    assert "limit max_steps" in resp.json()["error"]
