from django.contrib import admin
from django.contrib.staticfiles.views import serve as static_serve
from django.http import JsonResponse
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView


def health(request):  # type: ignore[no-untyped-def]
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/", include("jobs.api.urls")),
    path("api/", include("artifacts.urls")),
    path("api/", include("ants.web.urls")),
    path("api/", include("orgs.api_urls")),
    path("health", health, name="health"),
    path("api/health", health, name="api-health"),  # the reference's path
    # web UI: login (allauth), account and organization pages, then the job pages at the root
    path("accounts/", include("allauth.urls")),
    path("", include("orgs.urls")),
    # static assets served by the app itself: the product works offline with no separate web server
    re_path(r"^static/(?P<path>.*)$", static_serve, {"insecure": True}),
    path("", include("jobs.ui.urls")),
]

handler403 = "formicary_site.error_views.handler403"
handler404 = "formicary_site.error_views.handler404"
handler500 = "formicary_site.error_views.handler500"
