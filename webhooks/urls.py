from django.urls import path

from . import views

urlpatterns = [
    path("customerio/webhook/<str:webhook_token>", views.CustomerIOWebhookView.as_view(), name="customerio_webhook"),
    path("hull/batch", views.HullBatchView.as_view(), name="hull_batch"),
    path("hull/status", views.HullStatusView.as_view(), name="hull_status"),
    path("hull/smart-notifier", views.HullSmartNotifierView.as_view(), name="hull_smart_notifier"),
]
