"""Error pages inside the app layout, each with a way back (403, 404, 405, 500).

Django serves 403/404/500 through the ``handler*`` hooks; a 405 has no hook, so the UI's action
views use ``post_only`` instead of ``require_POST``. API paths keep their JSON errors (DRF)."""

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme

log = logging.getLogger(__name__)

PAGES = {
    403: ("Not allowed", "Your role does not allow this here. Ask an administrator of your organization."),
    404: ("Not found", "There is nothing at this address, or it belongs to another organization."),
    405: ("Not an action you can open", "This address performs an action: use its button on the page."),
    500: ("Something broke", "The server failed on this request; it was logged. Try again in a moment."),
}


def _back(request: HttpRequest) -> str:
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()}):
        return referer
    return ""


def error_page(request: HttpRequest, status: int, *, user: bool = True) -> HttpResponse:
    heading, explanation = PAGES[status]
    context = {"code": status, "heading": heading, "explanation": explanation, "back": _back(request)}
    html: str
    try:
        html = render_to_string(f"{status}.html", context, request=request if user else None)
    except Exception:  # the error page itself must never fail (e.g. the database is down)
        log.exception("rendering the %s page failed", status)
        html = f"<!DOCTYPE html><title>{status}</title><h1>{status} {heading}</h1><p><a href='/'>Home</a></p>"
    return HttpResponse(html, status=status)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_page(request, 403)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_page(request, 404)


def handler500(request: HttpRequest) -> HttpResponse:
    return error_page(request, 500)


def post_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Like ``require_POST``, but a GET gets the 405 page (with ``Allow``), not an empty body."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            response = error_page(request, 405)
            response["Allow"] = "POST"
            return response
        return view(request, *args, **kwargs)

    return wrapper
