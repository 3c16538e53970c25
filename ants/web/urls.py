from django.urls import path

from ants.web import api

urlpatterns = [
    path("ants", api.AntList.as_view(), name="ants"),
    path("ants/<str:key>", api.AntDetail.as_view(), name="ant"),
    path("executors", api.ExecutorList.as_view(), name="executors"),
    path("executors/<str:container_id>", api.ExecutorDetail.as_view(), name="executor"),
]
