"""One place that reads settings and environment at call time (STYLE rule 8)."""
import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_MISSING = object()


def setting(name, default=_MISSING):
    """A Django setting, or an environment variable of the same name, read now."""
    value = getattr(settings, name, _MISSING)
    if value is _MISSING:
        value = os.environ.get(name, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise ImproperlyConfigured(f"Setting {name} is required but not set.")
        return default
    return value
