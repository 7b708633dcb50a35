"""Connector pickers: segments, events and attributes offered from what the connector has seen in traffic."""
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from connector.forms import NOT_SEEN, picker_choices
from connector.models import Connector, SeenValue

NOW = timezone.now()


def change_url(connector):
    return reverse("admin:connector_connector_change", args=[connector.pk])


def seen(connector, kind, value, label="", days_ago=1):
    return SeenValue.objects.create(connector=connector, kind=kind, value=value, label=label,
                                    last_seen_at=timezone.now() - timedelta(days=days_ago))


@pytest.fixture
def connector(connector_factory):
    connector = connector_factory(synchronized_segments=["seg-1", "seg-gone"], events_filter=["Signed Up"],
                                  synchronized_attributes=["traits_plan"])
    seen(connector, SeenValue.Kind.SEGMENT, "seg-1", "Hull Users")
    seen(connector, SeenValue.Kind.SEGMENT, "seg-2", "Paying customers")
    seen(connector, SeenValue.Kind.SEGMENT, "seg-old", "Churned", days_ago=90)
    seen(connector, SeenValue.Kind.EVENT, "Signed Up")
    seen(connector, SeenValue.Kind.EVENT, "page")
    seen(connector, SeenValue.Kind.ATTRIBUTE, "traits_plan")
    seen(connector, SeenValue.Kind.ATTRIBUTE, "first_name")
    seen(connector, SeenValue.Kind.ATTRIBUTE, "traits_customerio/synced_at")
    return connector


def form_data(connector, **overrides):
    data = {"name": connector.name, "hull_id": connector.hull_id, "hull_organization": connector.hull_organization,
            "site_id": connector.site_id, "region": "us", "user_id_mapping": "external_id",
            "max_attribute_name_length": "150", "max_attribute_value_length": "1000",
            "max_identifier_value_length": "150", "webhook_timestamp_tolerance": "0",
            "rate_limit_per_second": "100", "retention_days": "30"}
    data.update(overrides)
    return data


# --- pure choice building ----------------------------------------------------------------------------

def test_segment_choices_show_name_and_id_sorted_by_name():
    choices = picker_choices([("s2", "Zebras", NOW), ("s1", "Ants", NOW)], [], NOW)

    assert choices == [("s1", "Ants (s1)"), ("s2", "Zebras (s2)")]


def test_selected_values_never_seen_stay_selectable_and_flagged():
    choices = picker_choices([("page", "", NOW)], ["Signed Up", "page"], NOW)

    assert choices == [("page", "page"), ("Signed Up", f"Signed Up {NOT_SEEN}")]


def test_values_not_seen_for_a_month_are_flagged():
    choices = picker_choices([("old", "", NOW - timedelta(days=31)), ("new", "", NOW - timedelta(days=29))], [], NOW)

    assert dict(choices) == {"old": f"old {NOT_SEEN}", "new": "new"}


def test_excluded_prefixes_are_not_offered():
    choices = picker_choices([("traits_customerio/id", "", NOW), ("email", "", NOW)], [], NOW,
                             exclude_prefixes=("traits_customerio/",))

    assert choices == [("email", "email")]


# --- the connector page ----------------------------------------------------------------------------------

def test_change_page_offers_filterable_pickers_filled_from_traffic(admin_client, connector):
    page = admin_client.get(change_url(connector)).content.decode()

    assert 'id="id_synchronized_segments" multiple class="selectfilter"' in page
    assert 'data-field-name="segments"' in page
    assert '<option value="seg-1" selected>Hull Users (seg-1)</option>' in page
    assert '<option value="seg-2">Paying customers (seg-2)</option>' in page
    assert f'<option value="seg-old">Churned (seg-old) {NOT_SEEN}</option>' in page
    assert f'<option value="seg-gone" selected>seg-gone {NOT_SEEN}</option>' in page
    assert '<option value="page">page</option>' in page
    assert '<option value="first_name">first_name</option>' in page
    assert 'value="traits_customerio/synced_at">' not in page
    assert "admin/js/SelectFilter2.js" in page
    assert 'name="synchronized_segments_other"' in page


def test_identifier_attribute_suggests_seen_attributes(admin_client, connector):
    page = admin_client.get(change_url(connector)).content.decode()

    assert 'list="id_user_id_mapping_suggestions"' in page
    assert '<option value="first_name">' in page


def test_picked_and_typed_values_are_stored_as_json_lists(admin_client, connector):
    data = form_data(connector, synchronized_segments=["seg-2", "seg-1"], synchronized_segments_other="seg-new\n",
                     events_filter=["page"], synchronized_attributes=["first_name", "traits_plan"])

    response = admin_client.post(change_url(connector), data)

    assert response.status_code == 302
    connector.refresh_from_db()
    assert connector.synchronized_segments == ["seg-2", "seg-1", "seg-new"]
    assert connector.events_filter == ["page"]
    assert connector.synchronized_attributes == ["first_name", "traits_plan"]


def test_nothing_picked_stores_an_empty_list(admin_client, connector):
    response = admin_client.post(change_url(connector), form_data(connector))

    assert response.status_code == 302
    connector.refresh_from_db()
    assert (connector.synchronized_segments, connector.events_filter) == ([], [])


def test_typed_writeback_attribute_is_still_rejected_and_kept_on_the_page(admin_client, connector):
    data = form_data(connector, synchronized_attributes=["first_name"],
                     synchronized_attributes_other="traits_customerio/id")

    response = admin_client.post(change_url(connector), data)

    page = response.content.decode()
    assert response.status_code == 200
    assert "cannot be mapped" in page
    assert f'<option value="traits_customerio/id" selected>traits_customerio/id {NOT_SEEN}</option>' in page


def test_add_page_falls_back_to_free_text_lines(admin_client):
    page = admin_client.get(reverse("admin:connector_connector_add")).content.decode()

    assert '<textarea name="synchronized_segments"' in page
    assert "selectfilter" not in page


def test_kind_never_seen_stays_free_text(admin_client, connector_factory):
    connector = connector_factory(events_filter=["Signed Up"])
    seen(connector, SeenValue.Kind.SEGMENT, "seg-1", "Hull Users")

    page = admin_client.get(change_url(connector)).content.decode()

    assert 'id="id_synchronized_segments" multiple class="selectfilter"' in page
    assert "Signed Up</textarea>" in page


def test_pickers_stay_per_connector(admin_client, connector, connector_factory):
    other = connector_factory()
    seen(other, SeenValue.Kind.SEGMENT, "seg-of-other", "Other org")

    page = admin_client.get(change_url(connector)).content.decode()

    assert "seg-of-other" not in page
    assert Connector.objects.count() == 2


def test_textarea_posted_after_the_picker_appeared_is_split_into_lines(admin_client, connector):
    response = admin_client.post(change_url(connector), form_data(connector, synchronized_segments="seg-1\nseg-2\n"))

    assert response.status_code == 302
    connector.refresh_from_db()
    assert connector.synchronized_segments == ["seg-1", "seg-2"]
