from django.urls import path

from artifacts import api

urlpatterns = [
    path("artifacts", api.ArtifactListCreate.as_view(), name="artifacts"),
    path("artifacts/<int:pk>", api.ArtifactDetail.as_view(), name="artifact"),
    path("artifacts/<int:pk>/download", api.ArtifactDownload.as_view(), name="artifact-download"),
    path(
        "artifacts/<str:sha256>/download",
        api.ArtifactDownloadBySha256.as_view(),
        name="artifact-download-sha",
    ),
]
