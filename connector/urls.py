from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="ops_healthz"),
    path("readyz", views.readyz, name="ops_readyz"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("", include("webhooks.urls")),
]
