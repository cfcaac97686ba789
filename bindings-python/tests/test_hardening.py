"""No input crashes the host process and no exit aborts it: hostile values
become typed errors (with `code` and `field`), and interpreter exit with
callbacks or daemon threads still busy ends cleanly with every event counted."""

from __future__ import annotations

import threading

import pytest
import trackcore
from hypothesis import given, settings
from hypothesis import strategies as st


def memory() -> trackcore.Tracker:
    return trackcore.Tracker(memory=True)


def error_of(call) -> trackcore.TrackError:
    with pytest.raises(trackcore.TrackError) as info:
        call()
    return info.value


def test_self_referencing_and_deep_structures_are_typed_errors_not_a_stack_overflow():
    t = memory()
    loop: list = []
    loop.append(loop)
    a: dict = {}
    b = {"a": a}
    a["b"] = b
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    deep_dict: dict = {}
    for _ in range(100_000):
        deep_dict = {"url": deep_dict, "value": "x"}
    for value, code in [(loop, "array_not_supported"), (a, "nested_object_not_supported"),
                        (deep, "array_not_supported"), (deep_dict, "invalid_rich_link")]:
        err = error_of(lambda: t.track("x", user_id="u-1", metadata={"v": value}))
        assert (err.code, err.field) == (code, "metadata.v"), err


def test_deep_structures_are_typed_errors_in_a_thread_with_a_small_stack():
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    t = memory()
    seen = []
    old = threading.stack_size(256 * 1024)
    try:
        worker = threading.Thread(target=lambda: seen.append(error_of(lambda: t.track("x", user_id="u-1", metadata={"v": deep}))))
        worker.start()
        worker.join()
    finally:
        threading.stack_size(old)
    assert [e.code for e in seen] == ["array_not_supported"]


def test_an_int_subclass_user_id_is_sent_as_the_integer_not_its_str():
    class Weird(int):
        def __str__(self) -> str:
            return "not-a-number"

        __repr__ = __str__

    t = memory()
    t.track("x", user_id=Weird(42), created_at=1_700_000_000, metadata={"n": Weird(7)})
    assert t.recorded() == [{"event_name": "x", "created_at": 1_700_000_000, "user_id": "42", "metadata": {"n": 7}}]


def test_a_mapping_that_repeats_a_key_is_a_typed_error():
    class Repeats:
        def items(self):
            return [("plan", "pro"), ("plan", "team")]

    err = error_of(lambda: memory().track("x", user_id="u-1", metadata=Repeats()))
    assert (err.code, err.field) == ("duplicate_metadata_key", "metadata.plan"), err


def test_exceptions_raised_by_the_callers_own_objects_become_typed_errors():
    import datetime
    import decimal

    class BadItems:
        def items(self):
            raise RuntimeError("boom")

    class BadDecimal(decimal.Decimal):
        def __eq__(self, other):
            raise RuntimeError("boom")

        __hash__ = decimal.Decimal.__hash__

    class BadDate(datetime.datetime):
        def timestamp(self):
            raise RuntimeError("boom")

    t = memory()
    err = error_of(lambda: t.track("x", user_id="u-1", metadata=BadItems()))
    assert (err.code, err.field) == ("unsupported_type", "metadata"), err
    err = error_of(lambda: t.track("x", user_id="u-1", metadata={"price": BadDecimal("1.5")}))
    assert (err.code, err.field) == ("unsupported_type", "metadata.price"), err
    when = BadDate(2026, 1, 1, tzinfo=datetime.timezone.utc)
    err = error_of(lambda: t.track("x", user_id="u-1", metadata={"renewal_date": when}))
    assert (err.code, err.field) == ("unsupported_type", "metadata.renewal_date"), err
    assert "RuntimeError" in str(err)


@pytest.mark.parametrize("field", ["event_name", "user_id", "email", "metadata.note", "metadata"])
def test_a_lone_surrogate_is_a_typed_error(field):
    bad = "a\udc80b"
    kwargs = {"user_id": "u-1"}
    name = "x"
    if field == "event_name":
        name = bad
    elif field == "metadata.note":
        kwargs["metadata"] = {"note": bad}
    elif field == "metadata":
        kwargs["metadata"] = {bad: 1}
    else:
        kwargs[field] = bad
    err = error_of(lambda: memory().track(name, **kwargs))
    assert (err.code, err.field) == ("invalid_unicode", field), err


def test_a_misplaced_token_never_appears_in_an_error():
    token = "dG9rOjEyMzQ1Njc4OTAxMjM0NTY3ODkw"
    attempts = [
        lambda: trackcore.Tracker("eu", token),                  # swapped positional arguments
        lambda: trackcore.Tracker(access_token=(token,)),
        lambda: trackcore.Tracker(token, base_url=token),
        lambda: trackcore.Tracker(token, overflow=token),
    ]
    for attempt in attempts:
        err = error_of(attempt)
        assert token not in str(err) and token not in repr(err), err
        assert err.code == "invalid_config"


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text())
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=40), user=st.one_of(st.text(max_size=20), st.integers()),
       metadata=st.dictionaries(st.text(max_size=12), VALUES, max_size=12))
def test_any_input_is_accepted_or_a_typed_error(name, user, metadata):
    t = memory()
    try:
        t.track(name, user_id=user, metadata=metadata)
    except trackcore.TrackError as e:
        assert e.code in trackcore.ERROR_CODES, e
    t.shutdown(0)


def test_an_overflow_storm_is_a_few_log_lines_with_counts_not_one_per_event(emulator, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="trackcore")
    emulator.hold()
    tracker = trackcore.Tracker(emulator.token, base_url=emulator.url, queue_capacity=10, max_in_flight=1)
    for i in range(100_000):
        tracker.track("storm", user_id=f"u-{i}")
    assert tracker.stats()["dropped_queue_full"] >= 99_000
    emulator.open()
    assert tracker.flush(20)
    lines = [r.getMessage() for r in caplog.records if r.name == "trackcore"]
    assert 1 <= len(lines) <= 10, lines[:20]
    assert any("queue_full" in line for line in lines), lines
    tracker.shutdown(2)
