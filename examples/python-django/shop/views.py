"""The example's views: upgrading an account tracks `upgraded-plan`;
subscribing to the newsletter tracks `subscribed-newsletter` for the signed-in user."""

import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

import trackcore
from trackcore.django import track, track_user

log = logging.getLogger(__name__)


@require_POST
def upgrade(request: HttpRequest, account_id: str) -> JsonResponse:
    """Upgrade the account (here: pretend) and tell Intercom. track() only
    validates and queues; delivery happens in the background."""
    plan = request.POST.get("plan", "pro")
    seats = int(request.POST.get("seats", "1"))
    try:
        track("upgraded-plan", user_id=account_id,
              metadata={"plan": plan, "seats": seats, "annual": request.POST.get("annual") == "1"})
    except trackcore.InvalidEventError as e:
        return JsonResponse({"error": e.code, "field": e.field}, status=400)
    return JsonResponse({"account": account_id, "plan": plan})


@require_POST
def subscribe(request: HttpRequest) -> JsonResponse:
    """Subscribe the signed-in user (here: pretend). track_user() sends
    user_id=user.pk and the user's email; for an anonymous visitor it sends
    nothing, logs a warning and returns False."""
    tracked = track_user(request.user, "subscribed-newsletter", metadata={"list": request.POST.get("list", "weekly")})
    return JsonResponse({"tracked": tracked})


def report_tracking_failure(event: dict, error: trackcore.TrackError) -> None:
    """TRACKCORE["on_error"]: called off the request thread for undeliverable events."""
    log.error("Intercom did not take %s [%s]: %s", event.get("event_name"), error.code, error)
