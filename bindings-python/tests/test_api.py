"""The Python face: value conversion, errors, options, memory mode, typing files."""

from __future__ import annotations

import decimal
import enum
import inspect
import pickle
import pydoc
import subprocess
import sys
import typing
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

import trackcore

PACKAGE = Path(trackcore.__file__).parent
BINDING = Path(__file__).resolve().parents[1]
KIND_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def body(tracker: trackcore.Tracker) -> dict:
    return tracker.recorded()[-1]


def test_python_values_convert_to_intercom_metadata(trackcore_tracker):
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    trackcore_tracker.track("typed", user_id="u", metadata={
        "s": "x", "i": -3, "f": 2.5, "b": False, "gone": None,
        "signup_date": when, "renewal_date": date(2024, 1, 2), "amount_dec": decimal.Decimal("12"),
        "ratio": decimal.Decimal("0.25"), "link": trackcore.RichLink("https://x.org/a", "A"),
    })
    assert body(trackcore_tracker)["metadata"] == {
        "s": "x", "i": -3, "f": 2.5, "b": False, "signup_date": int(when.timestamp()),
        "renewal_date": 1704153600, "amount_dec": 12, "ratio": 0.25, "link": {"url": "https://x.org/a", "value": "A"},
    }
    assert isinstance(body(trackcore_tracker)["metadata"]["amount_dec"], int)


def test_str_and_int_enums_are_sent_as_their_values(trackcore_tracker):
    class Plan(str, enum.Enum):
        PRO = "pro"

    class Seats(enum.IntEnum):
        FIVE = 5

    trackcore_tracker.track("enums", user_id="u", metadata={"plan": Plan.PRO, "seats": Seats.FIVE})
    assert body(trackcore_tracker)["metadata"] == {"plan": "pro", "seats": 5}


def test_created_at_accepts_int_and_aware_datetime_but_not_naive(trackcore_tracker):
    trackcore_tracker.track("a", email="a@b.c", created_at=1_700_000_000)
    assert body(trackcore_tracker)["created_at"] == 1_700_000_000
    trackcore_tracker.track("a", email="a@b.c", created_at=datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc))
    assert body(trackcore_tracker)["created_at"] == 1_700_000_000
    with pytest.raises(trackcore.InvalidTypeError) as info:
        trackcore_tracker.track("a", email="a@b.c", created_at=datetime(2023, 1, 1))
    assert info.value.field == "created_at" and isinstance(info.value, TypeError)
    with pytest.raises(trackcore.InvalidEventError) as info:
        trackcore_tracker.track("a", email="a@b.c", created_at=int(
            (datetime.now(timezone.utc) + timedelta(days=3)).timestamp() * 1000))
    assert info.value.code == "created_at_in_future"


def test_a_date_under_a_plain_key_is_refused_with_a_rename_hint(trackcore_tracker):
    with pytest.raises(trackcore.InvalidEventError) as info:
        trackcore_tracker.track("a", user_id="u", metadata={"signup": date(2024, 1, 1)})
    assert info.value.code == "date_requires_date_key" and "signup_date" in str(info.value)


def test_foreign_objects_raise_unsupported_type_as_type_error(trackcore_tracker):
    with pytest.raises(TypeError) as info:
        trackcore_tracker.track("a", user_id="u", metadata={"obj": object()})
    assert isinstance(info.value, trackcore.InvalidTypeError)
    assert info.value.code == "unsupported_type" and info.value.field == "metadata.obj"
    with pytest.raises(trackcore.InvalidTypeError):
        trackcore_tracker.track("a", user_id="u", metadata={"naive_date": datetime(2024, 1, 1)})
    with pytest.raises(trackcore.InvalidTypeError) as info:
        trackcore_tracker.track(None, user_id="u")  # type: ignore[arg-type]
    assert info.value.field == "event_name"
    with pytest.raises(trackcore.InvalidTypeError) as info:
        trackcore_tracker.track("a", user_id=1.5)  # type: ignore[arg-type]
    assert info.value.field == "user_id"
    with pytest.raises(trackcore.InvalidTypeError):
        trackcore_tracker.track("a", user_id="u", metadata=[("k", 1)])  # type: ignore[arg-type]
    assert trackcore_tracker.recorded() == []


def test_integers_wider_than_64_bits_raise_number_out_of_range(trackcore_tracker):
    with pytest.raises(ValueError) as info:
        trackcore_tracker.track("a", user_id="u", metadata={"big": 2**64})
    assert info.value.code == "number_out_of_range" and info.value.field == "metadata.big"


def test_money_and_rich_link_of_the_wrong_type_raise_the_typed_error_naming_the_argument():
    with pytest.raises(trackcore.InvalidTypeError) as info:
        trackcore.Money(1.5, "eur")  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError)
    assert (info.value.code, info.value.field) == ("unsupported_type", "amount_cents")
    assert str(info.value) == "amount_cents: must be an int (a whole number of cents), got float"
    for args, field in [((True, "eur"), "amount_cents"), (("5", "eur"), "amount_cents"),
                        ((decimal.Decimal("5"), "eur"), "amount_cents"), ((5, b"eur"), "currency"),
                        ((5, None), "currency")]:
        with pytest.raises(trackcore.InvalidTypeError) as info:
            trackcore.Money(*args)  # type: ignore[arg-type]
        assert (info.value.code, info.value.field) == ("unsupported_type", field), args
    with pytest.raises(trackcore.InvalidEventError) as info:
        trackcore.Money(2**64, "eur")
    assert (info.value.code, info.value.field) == ("number_out_of_range", "amount_cents")
    for args, field in [((1, "Invoice"), "url"), (("https://x.org/i", None), "value")]:
        with pytest.raises(trackcore.InvalidTypeError) as info:
            trackcore.RichLink(*args)  # type: ignore[arg-type]
        assert (info.value.code, info.value.field) == ("unsupported_type", field), args

    class Cents(enum.IntEnum):
        PRICE = 34999

    assert trackcore.Money(Cents.PRICE, "eur") == trackcore.Money(34999, "eur")
    assert trackcore.Money(amount_cents=5, currency="eur").amount_cents == 5


def test_every_core_option_is_a_keyword_and_unknown_ones_raise_config_error():
    names = [o.name for o in trackcore.options()]
    assert "queue_capacity" in names and "overflow" in names and len(names) == len(set(names)) >= 20
    trackcore.Tracker(memory=True, overflow="drop_oldest", request_timeout=2.5, queue_capacity=5,
                      allowed_event_names=("a", "b"), dedupe=False, api_version="2.14").shutdown(0)
    with pytest.raises(trackcore.ConfigError) as info:
        trackcore.Tracker(memory=True, queue_capasity=5)
    assert info.value.code == "invalid_config" and info.value.field == "config.queue_capasity"
    assert isinstance(info.value, ValueError)
    with pytest.raises(trackcore.ConfigError) as info:
        trackcore.Tracker(memory=True, overflow="sometimes")
    assert info.value.field == "config.overflow"
    with pytest.raises(trackcore.ConfigError):
        trackcore.Tracker(memory=True, queue_capacity=[1])
    with pytest.raises(trackcore.ConfigError):
        trackcore.Tracker(memory=True, on_error="not callable")


def test_a_live_tracker_without_any_token_raises_missing_access_token(monkeypatch):
    monkeypatch.delenv("INTERCOM_ACCESS_TOKEN", raising=False)
    with pytest.raises(trackcore.ConfigError) as info:
        trackcore.Tracker()
    assert info.value.code == "missing_access_token"


def test_memory_mode_records_and_clears(trackcore_tracker):
    trackcore_tracker.track("a", user_id="u")
    trackcore_tracker.track("b", user_id="u")
    assert [e["event_name"] for e in trackcore_tracker.recorded()] == ["a", "b"]
    trackcore_tracker.clear_recorded()
    assert trackcore_tracker.recorded() == []
    assert trackcore_tracker.memory is True
    assert trackcore_tracker.stats()["tracked"] == 2


def test_errors_pickle_with_their_code_and_field():
    err = trackcore.InvalidEventError("event_name: must not be empty", "missing_event_name", "event_name")
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), back.code, back.field, str(back)) == (type(err), err.code, err.field, str(err))


def test_every_error_code_of_the_core_is_exposed():
    assert "too_many_metadata_keys" in trackcore.ERROR_CODES and "rejected" in trackcore.ERROR_CODES
    assert len(trackcore.ERROR_CODES) == len(set(trackcore.ERROR_CODES)) >= 30


def test_package_ships_typing_stub_and_py_typed_marker_and_documents_every_public_name():
    assert (PACKAGE / "py.typed").exists()
    stub = (PACKAGE / "__init__.pyi").read_text()
    for name in trackcore.__all__:
        assert name in stub, name
        obj = getattr(trackcore, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"
    for method in ("track", "flush", "shutdown", "stats", "recorded", "clear_recorded"):
        assert f"def {method}(" in stub
        assert getattr(trackcore.Tracker, method).__doc__, method


def test_readme_options_table_matches_the_core():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for o in trackcore.options():
        default = f"`{o.default}`" if o.default else "—"
        assert f"| `{o.name}` | {o.kind} | {default} | {o.doc} |" in readme, o.name


def test_help_and_the_signature_show_every_core_option_with_its_type_and_default():
    signature = inspect.signature(trackcore.Tracker)
    params = signature.parameters
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()), signature
    assert list(params)[:5] == ["access_token", "region", "on_error", "flush_at_exit", "exit_timeout"]
    for o in trackcore.options():
        param = params[o.name]
        assert param.annotation is not inspect.Parameter.empty, o.name
        if o.default == "" or o.default.startswith("$") or o.name in ("region", "user_agent_suffix"):
            continue  # None: unset / from the environment / the positional None; the binding's suffix
        assert type(param.default) is KIND_TYPES[o.kind], o.name
        assert param.default == KIND_TYPES[o.kind](o.default if o.kind != "bool" else o.default == "true"), o.name
    assert params["overflow"].annotation == typing.Literal["drop_newest", "drop_oldest", "block"]
    assert params["region"].annotation == typing.Optional[typing.Literal["us", "eu", "au"]]

    text = pydoc.render_doc(trackcore.Tracker, renderer=pydoc.plaintext)
    assert "**options" not in text
    for o in trackcore.options():
        assert o.doc in text, o.name
        if o.kind in ("int", "float", "bool") and o.default:
            assert f"{o.name}: {o.kind} = {params[o.name].default!r}" in text, o.name


def test_every_default_the_signature_shows_is_one_the_core_accepts():
    params = inspect.signature(trackcore.Tracker).parameters
    defaults = {name: p.default for name, p in params.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not None}
    trackcore.Tracker(**{**defaults, "memory": True}).shutdown(0)
    overflows = typing.get_args(params["overflow"].annotation)
    regions = typing.get_args(typing.get_args(params["region"].annotation)[0])  # Optional[Literal[...]]
    assert overflows and regions
    for name, choices in (("overflow", overflows), ("region", regions)):
        for choice in choices:
            trackcore.Tracker(memory=True, **{name: choice}).shutdown(0)


def test_the_signature_default_user_agent_suffix_is_what_the_tracker_sends(emulator):
    suffix = inspect.signature(trackcore.Tracker).parameters["user_agent_suffix"].default
    with trackcore.Tracker(emulator.token, base_url=emulator.url) as tracker:
        tracker.track("ua", user_id="u")
        assert tracker.flush(5) is True
    (event,) = emulator.events()
    assert event["headers"]["user-agent"].endswith(f"({suffix})"), (event["headers"]["user-agent"], suffix)


def test_the_typing_stub_lists_the_core_options_as_generated():
    result = subprocess.run([sys.executable, str(BINDING / "gen_stub.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    stub = (BINDING / "python" / "trackcore" / "__init__.pyi").read_text()
    for o in trackcore.options():
        if o.kind in ("int", "float", "bool") and o.default:
            default = inspect.signature(trackcore.Tracker).parameters[o.name].default
            assert f"        {o.name}: {o.kind} = {default!r},\n" in stub, o.name
    assert '        overflow: Literal["drop_newest", "drop_oldest", "block"] = "drop_newest",\n' in stub


def test_option_docs_cost_nothing_at_import_and_track_stays_the_native_method(run_python):
    result = run_python("import sys, trackcore; print('inspect' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert trackcore.Tracker is trackcore._native.Tracker
    assert type(trackcore.Tracker.__dict__["track"]).__name__ == "method_descriptor"
