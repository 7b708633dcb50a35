"""Security properties: secrets encrypted at rest and never in logs, the database or error messages;
constant-time comparisons; a clean `check --deploy`; CSRF only off on the machine endpoints; body limits."""
import ast
import base64
import hashlib
import hmac
import json
import logging
import os
import secrets as pysecrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.test import Client

from connector.crypto import SecretDecryptionError, decrypt
from connector.models import Connector
from sync.exceptions import CredentialsRejected, RetryableAPIError
from tests.builders import hull_event, hull_message, notification
from tests.fakes.customerio import FakeCustomerIO
from tests.fakes.hull import FakeHull
from webhooks.models import CustomerIOWebhook, HullNotification

ROOT = Path(__file__).resolve().parents[1]
PRODUCT_DIRS = ("connector", "sync", "webhooks")
SITE = "site-security"
HULL_SECRET = "hullsecret-PLAINTEXT-4f1c9a0e7b2d"
API_KEY = "apikey-PLAINTEXT-8e3b5d1a6c70"
SIGNING_KEY = "signingkey-PLAINTEXT-2a9f4e6b1d33"
BASIC = base64.b64encode(f"{SITE}:{API_KEY}".encode()).decode()
SECRETS = {"hull_secret": HULL_SECRET, "api_key": API_KEY, "webhook_signing_key": SIGNING_KEY,
           "basic auth header": BASIC}


@pytest.fixture
def fakes(monkeypatch):
    with FakeCustomerIO(site_id=SITE, api_key=API_KEY) as cio, FakeHull() as hull:
        monkeypatch.setenv("CUSTOMERIO_TRACK_URL", cio.url)
        monkeypatch.setenv("HULL_FIREHOSE_URL", hull.url)
        monkeypatch.delenv("HULL_SMART_NOTIFIER_PUBLIC_KEY", raising=False)
        yield cio, hull


@pytest.fixture
def connector(connector_factory, fakes):
    cio, hull = fakes
    made = connector_factory(hull_organization=hull.url, hull_secret=HULL_SECRET, site_id=SITE, api_key=API_KEY,
                             webhook_signing_key=SIGNING_KEY, events_filter=["Signed Up"],
                             synchronized_attributes=["traits_plan"])
    hull.add_connector(made.hull_id, HULL_SECRET)
    return made


def signed_webhook(n, key=SIGNING_KEY):
    body = json.dumps({"event_id": f"01HSEC{n:020d}", "object_type": "email", "metric": "opened",
                       "timestamp": 1717004000, "data": {"delivery_id": f"d{n}", "customer_id": f"ext-s{n}",
                                                         "identifiers": {"id": f"ext-s{n}",
                                                                         "email": f"s{n}@example.com"}}}).encode()
    timestamp = str(int(time.time()))
    signature = hmac.new(key.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return body, {"HTTP_X_CIO_TIMESTAMP": timestamp, "HTTP_X_CIO_SIGNATURE": signature}


def full_traffic(client, connector, capture, fakes):
    """A sync with events and write-back, signed and unsigned webhooks, status checks, a 401 and Hull down."""
    cio, hull = fakes
    token_url = f"/customerio/webhook/{connector.webhook_token}"
    status = f"/hull/status?ship={connector.hull_id}&organization=o&secret={HULL_SECRET}"

    def send(method, *args, **kwargs):
        with capture(execute=True):
            return getattr(client, method)(*args, **kwargs).status_code

    messages = [hull_message(user_id=f"s{i}", traits_plan="pro", events=[hull_event("Signed Up", f"s{i}")])
                for i in range(3)]
    assert send("post", "/hull/smart-notifier", notification(connector, messages),
                content_type="application/json") == 200
    body, headers = signed_webhook(1)
    assert send("post", token_url, body, content_type="application/json", **headers) == 200
    body, headers = signed_webhook(2, key="wrong-key")
    assert send("post", token_url, body, content_type="application/json", **headers) == 401
    assert send("get", status) == 200
    assert send("get", f"/hull/status?ship={connector.hull_id}&secret=wrong") == 401
    hull.set_down(True)
    body, headers = signed_webhook(3)
    assert send("post", token_url, body, content_type="application/json", **headers) == 200
    hull.set_down(False)
    cio.set_credentials(SITE, "rotated-key")
    assert send("get", status) == 200
    assert send("post", "/hull/smart-notifier", notification(connector, [hull_message(user_id="s9")]),
                content_type="application/json") == 200
    assert len(cio.people()) == 3 and hull.events()
    assert Connector.objects.get(pk=connector.pk).credentials_rejected_at is not None


def found_secrets(text):
    return sorted(name for name, secret in SECRETS.items() if secret in text)


# --- at rest ---------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_secrets_are_encrypted_in_their_columns(connector):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT hull_secret, api_key, webhook_signing_key FROM {Connector._meta.db_table} "
                       "WHERE id = %s", [connector.pk])
        raw = cursor.fetchone()

    assert all(value.startswith("gAAAA") for value in raw)     # Fernet tokens
    assert not found_secrets(" ".join(raw))
    assert [decrypt(value) for value in raw] == [HULL_SECRET, API_KEY, SIGNING_KEY]
    assert len(set(raw)) == 3


@pytest.mark.django_db
def test_same_secret_encrypts_differently_each_time(connector_factory):
    first = connector_factory(api_key=API_KEY)
    second = connector_factory(api_key=API_KEY)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT api_key FROM {Connector._meta.db_table} WHERE id IN (%s, %s)", [first.pk, second.pk])
        tokens = [row[0] for row in cursor.fetchall()]
    assert tokens[0] != tokens[1]


@pytest.mark.django_db
def test_a_secret_under_another_key_cannot_be_read_and_the_error_does_not_leak_it(connector, settings):
    settings.FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    with pytest.raises(SecretDecryptionError) as caught:
        Connector.objects.get(pk=connector.pk)
    assert not found_secrets(str(caught.value) + repr(caught.value))


@pytest.mark.django_db
def test_no_secret_in_plaintext_anywhere_in_the_database_after_traffic(client, connector, fakes,
                                                                       django_capture_on_commit_callbacks):
    full_traffic(client, connector, django_capture_on_commit_callbacks, fakes)

    leaks = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            names = [column[0] for column in cursor.description]
            for row in cursor.fetchall():
                for name, value in zip(names, row):
                    hits = found_secrets(str(value))
                    if hits:
                        leaks.setdefault(f"{table}.{name}", set()).update(hits)
    assert not leaks, f"plaintext secrets stored at rest: {leaks}"


# --- logs and error messages ----------------------------------------------------------------------

@pytest.mark.django_db
def test_no_secret_in_any_log_record_at_debug(client, connector, fakes, caplog,
                                              django_capture_on_commit_callbacks):
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        if isinstance(logging.root.manager.loggerDict[name], logging.Logger):
            caplog.set_level(logging.DEBUG, logger=name)

    full_traffic(client, connector, django_capture_on_commit_callbacks, fakes)

    assert len(caplog.records) > 20
    leaks = []
    for record in caplog.records:
        text = " ".join([record.getMessage(), record.exc_text or "", repr(record.args)])
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]!r} {record.exc_info[1]}"
        if found_secrets(text):
            leaks.append((record.name, record.levelname, found_secrets(text), record.getMessage()[:200]))
    assert not leaks


def test_api_errors_never_print_their_body_or_credentials():
    error = RetryableAPIError("Customer.io POST /api/v2/batch failed", status=500,
                              body=f"echo Authorization: Basic {BASIC} key={API_KEY}")
    assert not found_secrets(str(error)) and not found_secrets(repr(error))
    rejected = CredentialsRejected("Customer.io rejected the Site ID / API key", status=401)
    assert not found_secrets(str(rejected))


@pytest.mark.django_db
def test_rejected_credentials_reason_on_the_row_names_no_secret(client, connector, fakes,
                                                                  django_capture_on_commit_callbacks):
    cio, _ = fakes
    cio.set_credentials(SITE, "another-key")
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/hull/smart-notifier", notification(connector, [hull_message()]), content_type="application/json")
    row = HullNotification.objects.get()
    assert row.reason and "API key" in row.reason
    assert not found_secrets(row.reason)


# --- constant-time comparisons -------------------------------------------------------------------

SECRET_WORDS = ("secret", "api_key", "signature", "signing_key", "password", "token", "jti", "digest")
# Comparisons that are not authentication: the admin form detects whether the admin typed new credentials.
NOT_AUTHENTICATION = {
    ("connector/forms.py", "(self.instance.site_id, self.instance.api_key) != self._saved_credentials"),
}


def _product_files():
    for directory in PRODUCT_DIRS:
        for path in sorted((ROOT / directory).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _secretish(node, source):
    text = (ast.get_source_segment(source, node) or "").lower()
    return any(word in text for word in SECRET_WORDS)


def test_no_equality_comparison_on_secrets_in_product_code():
    offenders = []
    for path in _product_files():
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, (ast.Eq, ast.NotEq, ast.Is, ast.IsNot)) for op in node.ops):
                continue
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value in (None, "", 0) for o in operands):
                continue
            segment = ast.get_source_segment(source, node)
            if (str(path.relative_to(ROOT)), segment) in NOT_AUTHENTICATION:
                continue
            if any(_secretish(o, source) for o in operands):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.get_source_segment(source, node)}")
    assert not offenders, "compare secrets with hmac.compare_digest:\n" + "\n".join(offenders)


def test_security_module_compares_with_hmac_compare_digest():
    source = (ROOT / "webhooks" / "security.py").read_text()
    tree = ast.parse(source)
    functions = {node.name: ast.get_source_segment(source, node) for node in tree.body
                 if isinstance(node, ast.FunctionDef)}
    assert "hmac.compare_digest" in functions["secrets_match"]
    assert "hmac.compare_digest" in functions["customerio_signature_valid"]
    assert "secrets_match(" in functions["smart_notifier_signature_valid"]


def test_every_secret_check_in_the_views_goes_through_the_security_module():
    source = (ROOT / "webhooks" / "views.py").read_text()
    assert source.count("security.secrets_match(") >= 2
    assert "security.customerio_signature_valid(" in source
    assert "security.smart_notifier_signature_valid(" in source


# --- deployment checks ---------------------------------------------------------------------------

def production_env(**overrides):
    test_only = ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {key: value for key, value in os.environ.items() if key not in test_only}
    env.update({"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": pysecrets.token_urlsafe(64),
                "DJANGO_ALLOWED_HOSTS": "connector.example.com", "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
                "DJANGO_SETTINGS_MODULE": "connector.settings"})
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def manage(*args, env):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_check_deploy_is_clean_with_the_documented_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    result = manage("check", env=production_env(DJANGO_SECRET_KEY=None))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


# --- CSRF ----------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_admin_login_post_without_csrf_token_is_403(admin_user):
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/admin/login/", {"username": "admin", "password": "password"})
    assert response.status_code == 403


@pytest.mark.django_db
def test_admin_change_post_without_csrf_token_is_403(admin_user, connector_factory):
    connector = connector_factory()
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    response = strict.post(f"/admin/connector/connector/{connector.pk}/change/", {"name": "hijacked"})
    assert response.status_code == 403
    connector.refresh_from_db()
    assert connector.name != "hijacked"


@pytest.mark.django_db
@pytest.mark.parametrize("path, expected", [
    ("/hull/smart-notifier", 200), ("/hull/batch?ship={ship}&secret={secret}", 200),
    ("/hull/status?ship={ship}&secret={secret}", 200), ("/customerio/webhook/{token}", 200),
])
def test_machine_endpoints_accept_posts_without_csrf_even_with_a_session(admin_user, connector, fakes, path,
                                                                         expected, django_capture_on_commit_callbacks):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    url = path.format(ship=connector.hull_id, secret=HULL_SECRET, token=connector.webhook_token)
    if "smart-notifier" in path:
        body = notification(connector, [])
    elif "batch" in path:
        body = {"url": fakes[1].serve_extract("none", [])}
    else:
        body, headers = signed_webhook(5)
        with django_capture_on_commit_callbacks(execute=True):
            response = strict.post(url, body, content_type="application/json", **headers)
        assert response.status_code == expected
        return
    with django_capture_on_commit_callbacks(execute=True):
        response = strict.post(url, body, content_type="application/json")
    assert response.status_code == expected, response.content[:200]


# --- body size limits per endpoint ---------------------------------------------------------------

LIMITS = [("/hull/smart-notifier", 10 * 1024 * 1024), ("/hull/batch?ship={ship}&secret={secret}", 64 * 1024),
          ("/customerio/webhook/{token}", 2 * 1024 * 1024)]


def padded(size):
    """A JSON object of exactly `size` bytes."""
    skeleton = b'{"pad": ""}'
    return b'{"pad": "' + b"a" * (size - len(skeleton)) + b'"}'


@pytest.mark.django_db
@pytest.mark.parametrize("path, limit", LIMITS)
def test_each_endpoint_refuses_one_byte_over_its_limit_and_stores_nothing(client, connector, path, limit):
    url = path.format(ship=connector.hull_id, secret=HULL_SECRET, token=connector.webhook_token)

    over = client.post(url, padded(limit + 1), content_type="application/json")
    at = client.post(url, padded(limit), content_type="application/json")

    assert over.status_code == 413
    assert at.status_code != 413 and at.status_code < 500
    assert not HullNotification.objects.exists()
    assert not CustomerIOWebhook.objects.exclude(status="rejected").exists()   # bad signatures are kept on purpose
