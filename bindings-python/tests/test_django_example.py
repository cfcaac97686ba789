"""The Django example's view, under Django's test client, delivers to the emulator."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python-django"


@pytest.fixture(scope="module")
def django_client():
    sys.path.insert(0, str(EXAMPLE))
    os.environ["DJANGO_SETTINGS_MODULE"] = "shop.settings"
    import django
    from django.test import Client

    django.setup()
    try:
        yield Client()
    finally:
        from trackcore.django import reset_tracker

        reset_tracker(0)
        sys.path.remove(str(EXAMPLE))


def test_upgrade_view_tracks_upgraded_plan_and_it_reaches_the_emulator(django_client, emulator):
    from django.conf import settings
    from django.test import override_settings

    from trackcore.django import get_tracker

    config = dict(settings.TRACKCORE, access_token=emulator.token, base_url=emulator.url)
    with override_settings(TRACKCORE=config):
        response = django_client.post("/accounts/u-123/upgrade/", {"plan": "pro", "seats": "5", "annual": "1"})
        assert response.status_code == 200, response.content
        assert get_tracker().flush(5) is True
    (event,) = emulator.events()
    assert event["event_name"] == "upgraded-plan" and event["user_id"] == "u-123"
    assert event["metadata"] == {"plan": "pro", "seats": 5, "annual": True}


def test_upgrade_view_answers_400_with_the_core_code_for_an_invalid_event(django_client, emulator):
    from django.conf import settings
    from django.test import override_settings

    config = dict(settings.TRACKCORE, access_token=emulator.token, base_url=emulator.url)
    with override_settings(TRACKCORE=config):
        response = django_client.post("/accounts/%20/upgrade/", {"plan": "pro"})
    assert response.status_code == 400
    assert response.json() == {"error": "empty_identifier", "field": "user_id"}
    assert emulator.events() == []
