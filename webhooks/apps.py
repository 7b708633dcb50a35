from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Inbox (deliveries from Hull and Customer.io)"

    def ready(self):
        from . import tasks_retention  # noqa: F401 - registers webhooks.tasks_retention.logs_purge
