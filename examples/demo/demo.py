"""Track a few events through the Python binding (run by scripts/demo.sh).

Reads TRACKCORE_BASE_URL and INTERCOM_ACCESS_TOKEN from the environment.
"""
import datetime
import os

import trackcore


def on_error(event, error):
    print(f"python: not delivered [{error.code}] {event.get('event_name')}: {error}")


tracker = trackcore.Tracker(base_url=os.environ["TRACKCORE_BASE_URL"], on_error=on_error)
tracker.track("upgraded-plan", user_id=42, metadata={
    "plan": "team", "seats": 12, "annual": False,
    "price": trackcore.Money(129900, "usd"),
    "renewal_date": datetime.datetime(2027, 1, 1, tzinfo=datetime.timezone.utc),
})
tracker.track("read-article", email="py-reader@example.com", metadata={
    "article": trackcore.RichLink("https://example.org/b.html", "Pricing explained"),
})
try:
    tracker.track("invited-teammate", user_id=42, metadata={"invitees": ["a@x.io", "b@x.io"]})
except trackcore.TrackError as e:
    print(f"python: rejected at track(): [{e.code}] {e}")
    print("        (deliberate: Intercom metadata has no lists, so track() raises a typed error at once and nothing is sent)")
done = tracker.flush(10)
s = tracker.stats()
print(f"python: tracked={s['tracked']} delivered={s['delivered']} failed={s['failed']} dropped={s['dropped']} (flush complete: {done})")
tracker.shutdown(5)
