"""Connector configuration as JSON (DESIGN §4.4): validation, import and export.

`settings_problems` and `validate_connector_settings` are pure so the admin form reuses them.
On import a key absent from the file keeps the stored value (the model default for a new
connector); that is what lets an export without secrets be re-imported safely.
"""
import json
from urllib.parse import urlsplit

from django.db import transaction
from django.urls import reverse

from .conf import setting
from .models import Connector

REQUIRED_KEYS = ("hull_id", "hull_organization")
SECRET_KEYS = ("hull_secret", "api_key", "webhook_signing_key")
STRING_KEYS = ("name", "hull_id", "hull_organization", "site_id", "user_id_mapping")
LIST_KEYS = ("synchronized_segments", "events_filter", "synchronized_attributes")
BOOLEAN_KEYS = ("enable_user_deletion", "anonymous_events", "forward_message_body", "update_hull_traits")
POSITIVE_INT_KEYS = ("max_attribute_name_length", "max_attribute_value_length", "max_identifier_value_length",
                     "rate_limit_per_second", "retention_days")
# 0 is meaningful here: accept a signed webhook of any age.
NON_NEGATIVE_INT_KEYS = ("webhook_timestamp_tolerance",)
# Order of the exported JSON; secrets sit beside the credential they belong to.
EXPORT_KEYS = ("name", "hull_id", "hull_organization", "hull_secret", "site_id", "api_key", "region",
               "webhook_signing_key", "synchronized_segments", "enable_user_deletion", "events_filter",
               "anonymous_events", "user_id_mapping", "synchronized_attributes", "max_attribute_name_length",
               "max_attribute_value_length", "max_identifier_value_length", "rate_limit_per_second",
               "retention_days", "webhook_timestamp_tolerance", "forward_message_body", "update_hull_traits")
SETTINGS_KEYS = frozenset(EXPORT_KEYS)
# Printed by export and derived from the stored token, so accepted and ignored on import.
DERIVED_KEYS = frozenset({"webhook_url"})
REGIONS = ("us", "eu")
WRITEBACK_PREFIXES = ("traits_customerio/", "customerio/")
DEFAULT_PUBLIC_BASE_URL = "http://127.0.0.1:8000"


class ConnectorSettingsError(Exception):
    """Connector settings that cannot be imported; `errors` lists every problem."""

    def __init__(self, errors):
        super().__init__("\n".join(errors))
        self.errors = list(errors)


JSON_TYPE_NAMES = {str: "string", int: "number", float: "number", bool: "boolean", list: "array", dict: "object"}


def _type_name(value):
    return "null" if value is None else JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _string_problem(key, value):
    if not isinstance(value, str):
        return f"must be a string, got {_type_name(value)}"
    max_length = Connector._meta.get_field(key).max_length
    if max_length and len(value) > max_length:
        return f"must be at most {max_length} characters, got {len(value)}"
    return None


def _list_problem(value):
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        return "must be a list of non-empty strings"
    return None


def _value_problem(key, value):
    """The type problem of one known key, or None."""
    if key in SECRET_KEYS:
        # Never echo the value: it is a secret.
        return None if isinstance(value, str) else f"must be a string, got {_type_name(value)}"
    if key in STRING_KEYS:
        return _string_problem(key, value)
    if key == "region":
        return None if value in REGIONS else f'must be "us" or "eu", got {json.dumps(value)}'
    if key in LIST_KEYS:
        return _list_problem(value)
    if key in BOOLEAN_KEYS:
        return None if isinstance(value, bool) else f"must be true or false, got {json.dumps(value)}"
    if key in POSITIVE_INT_KEYS:
        return None if _is_int(value) and value > 0 else f"must be a positive integer, got {json.dumps(value)}"
    if key in NON_NEGATIVE_INT_KEYS:
        return None if _is_int(value) and value >= 0 else f"must be an integer >= 0, got {json.dumps(value)}"
    return None


def _is_hull_organization(value):
    value = value.strip()
    try:
        parts = urlsplit(value if "://" in value else f"https://{value}")
        hostname = parts.hostname
    except ValueError:
        return False
    if "://" in value:
        return parts.scheme in ("http", "https") and bool(hostname)
    return bool(hostname) and not (parts.path or parts.query or parts.fragment or " " in value)


def _writeback_problems(attributes):
    return [
        ("synchronized_attributes",
         f'"{name}" cannot be mapped: the connector writes customerio/* traits back onto the Hull user, '
         "so sending them to Customer.io would change the payload on every sync and loop forever")
        for name in attributes if name.startswith(WRITEBACK_PREFIXES)
    ]


def _rule_problems(data):
    """Problems of values that already have the right type."""
    problems = []
    if "hull_id" in data and not data["hull_id"].strip():
        problems.append(("hull_id", "must not be empty"))
    if "name" in data and not data["name"].strip():
        problems.append(("name", "must not be empty"))
    if "hull_organization" in data and not _is_hull_organization(data["hull_organization"]):
        problems.append(("hull_organization", 'must be a host like "abc.hullapp.io" or an http(s) URL, '
                                              f'got {json.dumps(data["hull_organization"])}'))
    if "user_id_mapping" in data and not data["user_id_mapping"].strip():
        problems.append(("user_id_mapping", 'must not be empty (e.g. "external_id" or "email")'))
    if "synchronized_attributes" in data:
        problems += _writeback_problems(data["synchronized_attributes"])
    return problems


def settings_problems(data):
    """Every problem of one connector's settings as (key, message) pairs; [] when valid."""
    if not isinstance(data, dict):
        return [(None, f"must be a JSON object, got {_type_name(data)}")]
    problems = [(key, "unknown key") for key in data if key not in SETTINGS_KEYS | DERIVED_KEYS]
    problems += [(key, "is required") for key in REQUIRED_KEYS if key not in data]
    typed = {}
    for key in [key for key in EXPORT_KEYS if key in data]:
        problem = _value_problem(key, data[key])
        if problem:
            problems.append((key, problem))
        else:
            typed[key] = data[key]
    return problems + _rule_problems(typed)


def validate_connector_settings(data):
    """Every problem of one connector's settings as "key: message" strings; [] when valid."""
    return [f"{key}: {message}" if key else message for key, message in settings_problems(data)]


def validate_settings_list(items):
    """Problems of several connectors' settings, each prefixed with its position when there are several."""
    if not items:
        return ["the file contains no connector"]
    errors = []
    for index, data in enumerate(items, start=1):
        prefix = f"connector {index}: " if len(items) > 1 else ""
        errors += [prefix + error for error in validate_connector_settings(data)]
    hull_ids = [data["hull_id"].strip() for data in items
                if isinstance(data, dict) and isinstance(data.get("hull_id"), str)]
    duplicates = sorted({hull_id for hull_id in hull_ids if hull_ids.count(hull_id) > 1})
    return errors + [f'hull_id: "{hull_id}" appears more than once in the file' for hull_id in duplicates]


def read_settings_file(path):
    """The connectors' settings in a JSON file (one object or a list), as a list of dicts."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError as err:
        raise ConnectorSettingsError([f"{path}: file not found"]) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConnectorSettingsError([f"{path}: cannot be read ({err})"]) from err
    except json.JSONDecodeError as err:
        raise ConnectorSettingsError([f"{path}: not valid JSON ({err})"]) from err
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    raise ConnectorSettingsError([f"{path}: must contain a JSON object or a list of objects, "
                                  f"got {_type_name(data)}"])


def connector_import(data):
    """Create or update the connector with `data["hull_id"]`; returns (connector, created)."""
    errors = validate_connector_settings(data)
    if errors:
        raise ConnectorSettingsError(errors)
    fields = {key: value for key, value in data.items() if key in SETTINGS_KEYS and key != "hull_id"}
    hull_id = data["hull_id"].strip()
    return Connector.objects.update_or_create(
        hull_id=hull_id, defaults=fields, create_defaults={"name": hull_id, **fields}
    )


def connectors_import(items):
    """Validate every connector first, then import them all in one transaction."""
    errors = validate_settings_list(items)
    if errors:
        raise ConnectorSettingsError(errors)
    with transaction.atomic():
        return [connector_import(data) for data in items]


def public_base_url(default=DEFAULT_PUBLIC_BASE_URL):
    return (setting("PUBLIC_BASE_URL", "") or default).rstrip("/")


def webhook_url(connector, base_url):
    """The URL to paste into Customer.io's reporting webhook settings."""
    return base_url.rstrip("/") + reverse("customerio_webhook", kwargs={"webhook_token": connector.webhook_token})


def connector_export(connector, with_secrets=False):
    """The connector's settings as importable JSON data, plus its `webhook_url`."""
    keys = [key for key in EXPORT_KEYS if with_secrets or key not in SECRET_KEYS]
    data = {key: getattr(connector, key) for key in keys}
    data["webhook_url"] = webhook_url(connector, public_base_url())
    return data
