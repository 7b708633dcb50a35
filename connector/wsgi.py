import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connector.settings")
django.setup(set_prefix=False)

from connector.handlers import ConnectorApplication  # noqa: E402 - needs the settings loaded above

application = ConnectorApplication()
