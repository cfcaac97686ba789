"""Runs every shared conformance vector (tests/conformance/*.json, format in
that folder's README) through the public Python API: one memory-mode Tracker
per case, each step tracked in order, the recorded body or raised error code
compared with the expectation."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import trackcore

VECTORS = Path(__file__).resolve().parents[2] / "tests" / "conformance"
MIN_CASES = 60
NOW_SLACK = 5
FIELD_ORDER = ["event_name", "created_at", "user_id", "id", "email", "metadata"]


def _load_cases() -> List[Tuple[str, Dict[str, Any]]]:
    cases = []
    for path in sorted(VECTORS.glob("*.json")):
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
        for case in data["cases"]:
            cases.append((f"{path.stem}::{case['name']}", case))
    return cases


CASES = _load_cases()


def _special(v: Any):
    if isinstance(v, dict) and len(v) == 1:
        (k, a), = v.items()
        if k.startswith("$"):
            return k, a
    return None


def _repeat(v: Any):
    sp = _special(v)
    if sp and sp[0] == "$repeat":
        s, n = sp[1]
        return s * n
    return None


def _string(v: Any) -> Any:
    r = _repeat(v)
    return v if r is None else r


def _native(v: Any) -> Any:
    """A vector's metadata value as the Python value a user would pass."""
    sp = _special(v)
    if sp:
        form, arg = sp
        if form == "$date":
            return datetime.fromtimestamp(arg, tz=timezone.utc)
        if form == "$money":
            return trackcore.Money(arg[0], arg[1])
        if form == "$rich_link":
            return trackcore.RichLink(arg[0], arg[1])
        if form == "$float":
            return float(arg)
        if form == "$bigint":
            return int(arg)
        if form == "$repeat":
            return arg[0] * arg[1]
        raise AssertionError(f"unknown special form {form}")
    if isinstance(v, dict):
        return {k: _native(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_native(x) for x in v]
    return v


def _kwargs(inp: Dict[str, Any], now: int) -> Dict[str, Any]:
    kw: Dict[str, Any] = {}
    for k, v in inp.items():
        if k in ("event_name", "id", "email"):
            kw[k] = _string(v)
        elif k == "user_id":
            kw[k] = v if isinstance(v, int) else _string(v)
        elif k == "created_at":
            sp = _special(v)
            kw[k] = now + sp[1] if sp and sp[0] == "$now_plus" else v
        elif k == "metadata":
            kw[k] = {key: _native(val) for key, val in v.items()}
        else:
            raise AssertionError(f"unknown input key {k!r}")
    return kw


def _expand(v: Any) -> Any:
    r = _repeat(v)
    if r is not None:
        return r
    if isinstance(v, dict):
        return {k: _expand(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_expand(x) for x in v]
    return v


def _compare(path: str, actual: Any, expected: Any, diffs: List[str]) -> None:
    if isinstance(expected, bool) or isinstance(actual, bool):
        if actual is not expected:
            diffs.append(f"{path}: got {actual!r}, expected {expected!r}")
    elif isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        if actual != expected and not (isinstance(actual, float) and math.isnan(actual)):
            diffs.append(f"{path}: got {actual!r}, expected {expected!r}")
    elif isinstance(expected, dict) and isinstance(actual, dict):
        for k, ev in expected.items():
            if k not in actual:
                diffs.append(f"{path}.{k}: missing")
            else:
                _compare(f"{path}.{k}", actual[k], ev, diffs)
        for k in actual:
            if k not in expected:
                diffs.append(f"{path}.{k}: unexpected {actual[k]!r}")
    elif isinstance(expected, list) and isinstance(actual, list) and len(actual) == len(expected):
        for i, (a, e) in enumerate(zip(actual, expected)):
            _compare(f"{path}[{i}]", a, e, diffs)
    elif actual != expected or type(actual) is not type(expected):
        diffs.append(f"{path}: got {str(actual)[:120]!r}, expected {str(expected)[:120]!r}")


def _check_body(actual: Dict[str, Any], expected: Dict[str, Any], before: int, after: int) -> List[str]:
    expected = _expand(expected)
    diffs: List[str] = []
    if expected.get("created_at") == "$now":
        t = actual.get("created_at")
        if not (isinstance(t, int) and before - NOW_SLACK <= t <= after + NOW_SLACK):
            diffs.append(f"created_at: got {t!r}, expected now ({before}..{after})")
        expected = dict(expected, created_at=t)
    _compare("$", actual, expected, diffs)
    fields = list(actual)
    if fields != [f for f in FIELD_ORDER if f in actual]:
        diffs.append(f"field order: {fields}")
    if not diffs and list(actual.get("metadata", {})) != list(expected.get("metadata", {})):
        diffs.append(f"metadata key order: got {list(actual.get('metadata', {}))}")
    return diffs


def test_conformance_directory_holds_at_least_60_cases():
    assert len(CASES) >= MIN_CASES, f"only {len(CASES)} cases under {VECTORS}"


def test_every_input_error_code_the_vectors_use_is_a_known_core_code():
    used = set()
    for _, case in CASES:
        for step in case.get("steps") or [case]:
            if "error" in step["expect"]:
                used.add(step["expect"]["error"])
    assert used, "the vectors expect no error at all"
    assert used <= set(trackcore.ERROR_CODES), used - set(trackcore.ERROR_CODES)


@pytest.mark.parametrize("name,case", CASES, ids=[n for n, _ in CASES])
def test_conformance_vector_gives_the_same_body_or_error_as_the_core(name: str, case: Dict[str, Any]):
    tracker = trackcore.Tracker(memory=True, **case.get("options", {}))
    steps = case.get("steps") or [{"input": case["input"], "expect": case["expect"]}]
    problems: List[str] = []
    try:
        for n, step in enumerate(steps, 1):
            before = int(time.time())
            kwargs = _kwargs(step["input"], before)
            recorded_before = len(tracker.recorded())
            error = None
            try:
                event_name = kwargs.pop("event_name", "")
                tracker.track(event_name, **kwargs)
            except trackcore.TrackError as e:
                error = e
            after = int(time.time())
            recorded = tracker.recorded()
            expect = step["expect"]
            if "body" in expect:
                if error is not None:
                    problems.append(f"step {n}: raised {error.code}: {error}")
                elif len(recorded) != recorded_before + 1:
                    problems.append(f"step {n}: recorded {len(recorded) - recorded_before} bodies")
                else:
                    problems += [f"step {n}: {d}" for d in _check_body(recorded[-1], expect["body"], before, after)]
            else:
                if error is None:
                    problems.append(f"step {n}: expected error {expect['error']}, got body {str(recorded[-1:])[:200]}")
                    continue
                if error.code != expect["error"]:
                    problems.append(f"step {n}: raised {error.code} ({error}), expected {expect['error']}")
                if "field" in expect and error.field != expect["field"]:
                    problems.append(f"step {n}: field {error.field!r}, expected {expect['field']!r}")
                if not isinstance(error, (ValueError, TypeError)):
                    problems.append(f"step {n}: {type(error).__name__} is neither ValueError nor TypeError")
                if len(recorded) != recorded_before:
                    problems.append(f"step {n}: an event was recorded despite the error")
    finally:
        tracker.shutdown(0)
    assert not problems, "\n".join(problems)
