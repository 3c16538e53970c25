"""``{% definition_triggers definition as triggers %}``: the Triggers tab's data, read where it is
shown so the definition page's view stays as it is."""

from typing import Any

from django import template

from jobs.models import JobDefinition
from jobs.triggers.selectors import triggers_overview

register = template.Library()


@register.simple_tag
def definition_triggers(definition: JobDefinition) -> list[dict[str, Any]]:
    return triggers_overview(definition)
