import json
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from connector.models import Connector
from connector.settings_io import connector_export, validate_connector_settings

HULL_ID = "5a9d5c3e2f8e4b0012345678"
SECRETS = {"hull_secret": "plain-hull-secret-1", "api_key": "plain-api-key-2", "webhook_signing_key": "plain-sign-3"}
FULL = {
    "name": "Acme",
    "hull_id": HULL_ID,
    "hull_organization": "abc123.hullapp.io",
    **SECRETS,
    "site_id": "site-1",
    "region": "eu",
    "synchronized_segments": ["seg-1", "seg-2"],
    "enable_user_deletion": True,
    "events_filter": ["page", "Signed Up"],
    "anonymous_events": True,
    "user_id_mapping": "email",
    "synchronized_attributes": ["first_name", "traits_plan", "account.clearbit/name"],
    "max_attribute_name_length": 100,
    "max_attribute_value_length": 500,
    "max_identifier_value_length": 120,
    "rate_limit_per_second": 50,
    "retention_days": 7,
    "webhook_timestamp_tolerance": 300,
    "forward_message_body": True,
    "update_hull_traits": False,
}


def write_json(tmp_path, data, name="connector.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def run(*args):
    out = StringIO()
    call_command("connector_settings", *args, stdout=out)
    return out.getvalue()


def export(hull_id=HULL_ID, *flags):
    return json.loads(run("export", hull_id, *flags))


def snapshot():
    return [(c.pk, c.updated_at, connector_export(c, with_secrets=True)) for c in Connector.objects.order_by("pk")]


def test_import_creates_a_connector_with_every_setting(db, tmp_path):
    output = run("import", write_json(tmp_path, FULL))

    connector = Connector.objects.get(hull_id=HULL_ID)
    assert "Created connector Acme" in output
    for key, value in FULL.items():
        assert getattr(connector, key) == value, key


def test_import_of_minimal_settings_uses_the_manifest_defaults(db, tmp_path):
    run("import", write_json(tmp_path, {"hull_id": HULL_ID, "hull_organization": "http://127.0.0.1:9002"}))

    connector = Connector.objects.get(hull_id=HULL_ID)
    assert connector.name == HULL_ID
    assert connector.region == "us"
    assert connector.synchronized_segments == [] and connector.events_filter == []
    assert connector.user_id_mapping == "external_id"
    assert (connector.max_attribute_name_length, connector.max_attribute_value_length,
            connector.max_identifier_value_length) == (150, 1000, 150)
    assert connector.hull_secret == ""


def test_import_of_a_list_creates_each_connector(db, tmp_path):
    second = {**FULL, "hull_id": "second", "name": "Second"}

    output = run("import", write_json(tmp_path, [FULL, second]))

    assert set(Connector.objects.values_list("hull_id", flat=True)) == {HULL_ID, "second"}
    assert output.count("Created connector") == 2


def test_reimport_updates_the_connector_with_the_same_hull_id(db, tmp_path):
    run("import", write_json(tmp_path, FULL))
    token = Connector.objects.get().webhook_token

    output = run("import", write_json(tmp_path, {**FULL, "region": "us", "events_filter": []}))

    connector = Connector.objects.get()
    assert "Updated connector Acme" in output
    assert (connector.region, connector.events_filter) == ("us", [])
    assert connector.webhook_token == token


def test_export_round_trips_through_import(db, tmp_path):
    run("import", write_json(tmp_path, FULL))
    exported = export(HULL_ID, "--with-secrets")
    Connector.objects.all().delete()

    run("import", write_json(tmp_path, exported))

    reexported = export(HULL_ID, "--with-secrets")
    assert {k: v for k, v in reexported.items() if k != "webhook_url"} == FULL


def test_export_without_secrets_never_prints_them(db, tmp_path):
    run("import", write_json(tmp_path, FULL))

    output = run("export", HULL_ID)

    for name, value in SECRETS.items():
        assert value not in output
        assert name not in json.loads(output)


def test_export_with_secrets_prints_them(db, tmp_path):
    run("import", write_json(tmp_path, FULL))

    exported = export(HULL_ID, "--with-secrets")

    assert {name: exported[name] for name in SECRETS} == SECRETS


def test_export_prints_the_webhook_url(db, tmp_path, monkeypatch):
    run("import", write_json(tmp_path, FULL))
    token = Connector.objects.get().webhook_token

    assert export()["webhook_url"] == f"http://127.0.0.1:8000/customerio/webhook/{token}"
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://connector.example.com/")
    assert export()["webhook_url"] == f"https://connector.example.com/customerio/webhook/{token}"


def test_export_of_an_unknown_connector_fails(db):
    with pytest.raises(CommandError, match='No connector with hull_id "nope"'):
        run("export", "nope")


def test_export_without_secrets_reimports_keeping_the_stored_secrets(db, tmp_path):
    run("import", write_json(tmp_path, FULL))
    exported = export()

    run("import", write_json(tmp_path, {**exported, "name": "Renamed"}))

    connector = Connector.objects.get()
    assert connector.name == "Renamed"
    assert {name: getattr(connector, name) for name in SECRETS} == SECRETS


def test_an_empty_secret_in_the_file_clears_it(db, tmp_path):
    run("import", write_json(tmp_path, FULL))

    run("import", write_json(tmp_path, {"hull_id": HULL_ID, "hull_organization": "abc123.hullapp.io", "api_key": ""}))

    connector = Connector.objects.get()
    assert connector.api_key == ""
    assert connector.hull_secret == SECRETS["hull_secret"]


def test_secrets_are_stored_encrypted(db, tmp_path):
    run("import", write_json(tmp_path, FULL))

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT hull_secret, api_key, webhook_signing_key FROM {Connector._meta.db_table} WHERE hull_id = %s",
            [HULL_ID],
        )
        raw = cursor.fetchone()
    assert all(raw)
    for value in SECRETS.values():
        assert all(value not in column for column in raw)


INVALID = [
    ({**FULL, "region": "ap"}, 'region: must be "us" or "eu", got "ap"'),
    ({**FULL, "region": 1}, 'region: must be "us" or "eu", got 1'),
    ({**FULL, "colour": "blue"}, "colour: unknown key"),
    ({k: v for k, v in FULL.items() if k != "hull_id"}, "hull_id: is required"),
    ({**FULL, "hull_id": "  "}, "hull_id: must not be empty"),
    ({**FULL, "hull_id": 12}, "hull_id: must be a string, got number"),
    ({k: v for k, v in FULL.items() if k != "hull_organization"}, "hull_organization: is required"),
    ({**FULL, "hull_organization": "ftp://abc.hullapp.io"}, "hull_organization: must be a host"),
    ({**FULL, "hull_organization": "abc.hullapp.io/path"}, "hull_organization: must be a host"),
    ({**FULL, "synchronized_segments": "seg-1"}, "synchronized_segments: must be a list of non-empty strings"),
    ({**FULL, "events_filter": ["page", 3]}, "events_filter: must be a list of non-empty strings"),
    ({**FULL, "enable_user_deletion": "yes"}, 'enable_user_deletion: must be true or false, got "yes"'),
    ({**FULL, "anonymous_events": None}, "anonymous_events: must be true or false, got null"),
    ({**FULL, "max_attribute_value_length": 0}, "max_attribute_value_length: must be a positive integer, got 0"),
    ({**FULL, "max_identifier_value_length": "150"}, "max_identifier_value_length: must be a positive integer"),
    ({**FULL, "retention_days": True}, "retention_days: must be a positive integer, got true"),
    ({**FULL, "webhook_timestamp_tolerance": -1}, "webhook_timestamp_tolerance: must be an integer >= 0, got -1"),
    ({**FULL, "user_id_mapping": ""}, "user_id_mapping: must not be empty"),
    ({**FULL, "api_key": 123}, "api_key: must be a string, got number"),
    ({**FULL, "synchronized_attributes": ["email", "traits_customerio/id"]},
     'synchronized_attributes: "traits_customerio/id" cannot be mapped: the connector writes customerio/* traits'),
    ({**FULL, "synchronized_attributes": ["customerio/created_at"]},
     'synchronized_attributes: "customerio/created_at" cannot be mapped'),
    ({**FULL, "name": "x" * 201}, "name: must be at most 200 characters, got 201"),
    ([FULL, {**FULL, "name": "again"}], f'hull_id: "{HULL_ID}" appears more than once in the file'),
    ([{**FULL, "hull_id": "new-one"}, {**FULL, "region": "ap"}], 'connector 2: region: must be "us" or "eu"'),
    ([FULL, "text"], "connector 2: must be a JSON object, got string"),
    ([], "the file contains no connector"),
    ("not json {", "not valid JSON"),
    ('"a string"', "must contain a JSON object or a list of objects, got string"),
]


@pytest.mark.parametrize("data, message", INVALID)
def test_invalid_file_is_rejected_and_changes_nothing(db, tmp_path, connector_factory, data, message):
    connector_factory(hull_id=HULL_ID, name="Existing", region="us")
    connector_factory(hull_id="other", name="Other")
    before = snapshot()

    with pytest.raises(CommandError) as error:
        run("import", write_json(tmp_path, data))

    assert message in str(error.value)
    assert "nothing was changed" in str(error.value)
    assert snapshot() == before


def test_every_problem_is_reported_together(db, tmp_path):
    data = {**FULL, "region": "ap", "api_key": 1, "colour": "blue", "synchronized_attributes": ["customerio/id"]}

    with pytest.raises(CommandError) as error:
        run("import", write_json(tmp_path, data))

    for key in ("region:", "api_key:", "colour:", "synchronized_attributes:"):
        assert key in str(error.value)
    assert Connector.objects.count() == 0


def test_missing_file_is_reported(db, tmp_path):
    with pytest.raises(CommandError, match="file not found"):
        run("import", str(tmp_path / "missing.json"))


def test_secret_values_never_appear_in_errors():
    errors = validate_connector_settings({**FULL, "region": "ap"})

    assert not any(secret in error for error in errors for secret in SECRETS.values())


def test_valid_settings_have_no_problems():
    assert validate_connector_settings(FULL) == []
    assert validate_connector_settings({**FULL, "hull_organization": "https://abc123.hullapp.io/"}) == []


def test_command_exits_non_zero_on_a_bad_file(tmp_path):
    path = write_json(tmp_path, {"hull_id": HULL_ID, "hull_organization": "abc.hullapp.io", "region": "ap"})

    result = subprocess.run([sys.executable, "manage.py", "connector_settings", "import", path],
                            cwd=Path(settings.BASE_DIR), capture_output=True, text=True, timeout=60)

    assert result.returncode != 0
    assert 'region: must be "us" or "eu", got "ap"' in result.stderr
