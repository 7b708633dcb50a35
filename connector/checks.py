from django.core.checks import Warning, register

from .conf import setting


@register(deploy=True)
def field_encryption_key_check(app_configs, **kwargs):
    if setting("FIELD_ENCRYPTION_KEY", ""):
        return []
    return [
        Warning(
            "FIELD_ENCRYPTION_KEY is not set; secrets at rest are encrypted with a key derived from SECRET_KEY.",
            hint="Set FIELD_ENCRYPTION_KEY (Fernet key, comma-separated for rotation) so SECRET_KEY can rotate.",
            id="connector.W001",
        )
    ]
