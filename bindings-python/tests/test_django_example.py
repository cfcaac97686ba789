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


def test_track_user_skips_anonymous_and_unsaved_users_with_one_warning_and_tracks_real_ones(
        django_client, emulator, caplog):
    from django.conf import settings
    from django.contrib.auth.models import AnonymousUser, User
    from django.test import RequestFactory, override_settings

    from shop import views
    from trackcore.django import get_tracker, track_user

    config = dict(settings.TRACKCORE, access_token=emulator.token, base_url=emulator.url)
    with override_settings(TRACKCORE=config), caplog.at_level("WARNING", logger="trackcore"):
        response = django_client.post("/newsletter/subscribe/", {"list": "weekly"})  # no session: anonymous
        assert response.status_code == 200, response.content
        assert response.json() == {"tracked": False}
        assert track_user(AnonymousUser(), "viewed-pricing") is False
        assert track_user(User(username="not-saved-yet", email="new@example.com"), "viewed-pricing") is False

        request = RequestFactory().post("/newsletter/subscribe/", {"list": "daily"})
        request.user = User(pk=7, username="ada", email="ada@example.com")
        assert views.subscribe(request).content == b'{"tracked": true}'
        assert get_tracker().flush(5) is True
        assert get_tracker().stats()["tracked"] == 1

    warnings = [r for r in caplog.records if r.name == "trackcore"]
    assert [(r.levelname, r.getMessage().count("\n")) for r in warnings] == [("WARNING", 0)] * 3
    assert "subscribed-newsletter" in warnings[0].getMessage() and "viewed-pricing" in warnings[1].getMessage()
    (event,) = emulator.events()
    assert (event["event_name"], event["user_id"], event["email"]) == ("subscribed-newsletter", "7", "ada@example.com")
    assert event["metadata"] == {"list": "daily"}


def test_the_trackcore_tracker_fixture_captures_what_trackcore_django_tracks(django_client, emulator, trackcore_tracker):
    from django.conf import settings
    from django.test import override_settings

    from trackcore.django import get_tracker

    # Even with settings that point at a live endpoint, nothing is sent: the view's
    # track() goes to the fixture's memory tracker.
    config = dict(settings.TRACKCORE, access_token=emulator.token, base_url=emulator.url)
    with override_settings(TRACKCORE=config):
        response = django_client.post("/accounts/u-7/upgrade/", {"plan": "team", "seats": "3"})
        assert response.status_code == 200, response.content
        assert get_tracker() is trackcore_tracker
    assert [(e["event_name"], e["user_id"], e["metadata"]) for e in trackcore_tracker.recorded()] == [
        ("upgraded-plan", "u-7", {"plan": "team", "seats": 3, "annual": False})]
    assert emulator.events() == []


def test_use_tracker_routes_trackcore_django_for_the_block_then_restores_the_settings_tracker(django_client, emulator):
    from django.conf import settings
    from django.test import override_settings

    import trackcore.testing
    from trackcore.django import get_tracker, track, use_tracker

    config = dict(settings.TRACKCORE, access_token=emulator.token, base_url=emulator.url)
    with override_settings(TRACKCORE=config):
        with trackcore.testing.capture() as captured:
            track("inside", user_id="u-1")
            with use_tracker(trackcore.testing.memory_tracker()) as inner:
                track("nested", user_id="u-1")
            track("inside-again", user_id="u-1")
        track("outside", user_id="u-2")
        assert get_tracker().flush(5) is True
    assert [e["event_name"] for e in captured.recorded()] == ["inside", "inside-again"]
    assert [e["event_name"] for e in inner.recorded()] == ["nested"]
    assert [e["event_name"] for e in emulator.events()] == ["outside"]
