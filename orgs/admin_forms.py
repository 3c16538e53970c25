"""Admin form for name/value configs: the value is typed in plain and stored encrypted if secret."""

from typing import Any

from django import forms

from orgs import crypto


class SecretValueForm(forms.ModelForm):
    new_value = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Leave empty to keep the current value. Secret values are encrypted and never shown.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance.pk:
            self.fields["new_value"].required = True
        elif not self.instance.secret:
            self.fields["new_value"].initial = self.instance.value

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        new_value = cleaned.get("new_value")
        if new_value and cleaned.get("secret") and (problem := crypto.short_secret_problem(new_value)):
            self.add_error("new_value", problem)
        return cleaned

    def save(self, commit: bool = True) -> Any:
        instance = super().save(commit=False)
        new_value = self.cleaned_data.get("new_value")
        secret_changed = "secret" in self.changed_data
        if new_value:
            instance.set_value(new_value)
        elif secret_changed and instance.pk:
            raise forms.ValidationError("enter the value again when changing whether it is secret")
        if commit:
            instance.save()
        return instance
