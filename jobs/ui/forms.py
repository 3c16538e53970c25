"""Forms of the job pages: upload a definition, submit a request, save a job config."""

from collections.abc import Sequence
from typing import Any

from django import forms

from formicary_site.json_input import JSONInputError, loads
from jobs.services.requests import MAX_JOB_PRIORITY, MIN_JOB_PRIORITY


class UploadForm(forms.Form):
    text = forms.CharField(
        label="Definition (YAML)", required=False,
        widget=forms.Textarea(attrs={"rows": 18, "spellcheck": "false", "class": "code", "data-editor": ""}),
    )  # fmt: skip
    file = forms.FileField(label="or a file", required=False)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        upload = data.get("file")
        if upload is not None:
            try:
                data["text"] = upload.read().decode()
            except UnicodeDecodeError as exc:
                raise forms.ValidationError("the file is not UTF-8 text") from exc
        if not (data.get("text") or "").strip():
            raise forms.ValidationError("paste a definition or choose a file")
        return data


class SubmitForm(forms.Form):
    """One field per required param of the definition, then the optional extras."""

    job_priority = forms.IntegerField(
        label="priority", initial=0, required=False, min_value=MIN_JOB_PRIORITY, max_value=MAX_JOB_PRIORITY
    )
    extra_params = forms.CharField(
        label="more params (JSON object)", required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": '{"Name": "value"}', "class": "code"}),
    )  # fmt: skip

    def __init__(
        self, *args: Any, required_params: list[str], optional_params: Sequence[str] = (), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.required_params = required_params
        self.optional_params = [name for name in optional_params if name not in required_params]
        fields: dict[str, forms.Field] = {
            f"param_{name}": forms.CharField(label=name, max_length=64 * 1024) for name in required_params
        }
        # the other variables the definition's template uses: empty means "not set"
        for name in self.optional_params:
            fields[f"param_{name}"] = forms.CharField(
                label=name, max_length=64 * 1024, required=False,
                help_text="optional: used by the definition's template",
            )  # fmt: skip
        self.fields = {**fields, **self.fields}

    def clean_extra_params(self) -> dict[str, Any]:
        raw = (self.cleaned_data.get("extra_params") or "").strip()
        if not raw:
            return {}
        try:
            value = loads(raw)
        except JSONInputError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("must be a JSON object of name to value")
        return value

    def params(self) -> dict[str, Any]:
        named = {name: self.cleaned_data[f"param_{name}"] for name in self.required_params}
        optional = {
            name: value for name in self.optional_params if (value := self.cleaned_data.get(f"param_{name}"))
        }
        return {**self.cleaned_data.get("extra_params", {}), **optional, **named}


class JobConfigForm(forms.Form):
    name = forms.CharField(max_length=200, widget=forms.TextInput(attrs={"placeholder": "name"}))
    value = forms.CharField(
        required=False, widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "value"})
    )
    secret = forms.BooleanField(required=False)
