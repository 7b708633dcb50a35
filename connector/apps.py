from django.apps import AppConfig


class ConnectorConfig(AppConfig):
    name = "connector"
    verbose_name = "Connectors"

    def ready(self):
        from . import checks  # noqa: F401  (registers system checks)
