import pytest

from connector.models import Connector


@pytest.fixture
def connector_factory(db):
    """Create connectors with sensible defaults; keyword arguments override fields."""
    counter = {"n": 0}

    def make(**overrides):
        counter["n"] += 1
        fields = {
            "name": f"Test connector {counter['n']}",
            "hull_id": f"5a9d5c3e2f8e4b00123456{counter['n']:02d}",
            "hull_organization": "abc123.hullapp.io",
            "hull_secret": "hull-secret-value",
            "site_id": "site-id-1",
            "api_key": "api-key-value",
            "synchronized_segments": ["seg-1"],
            "user_id_mapping": "external_id",
        }
        fields.update(overrides)
        return Connector.objects.create(**fields)

    return make
