"""``Tracker``'s keyword options as Python shows them: the signature that
``help()`` and ``inspect.signature()`` report, the options section of its
docstring, and the ``__init__`` of the typing stub (written by
``bindings-python/gen_stub.py``). All three are built from the core's
``Config::describe()`` (``_native.options()``) and the native constructor's
signature, so names, types and defaults cannot drift from the core.

Nothing here runs at ``import trackcore``: the class attributes are computed on
first access, so importing stays as cheap as before (``inspect`` alone costs
more than the rest of the package).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Callable, Dict, List, Literal, NamedTuple, Optional, Sequence

from . import _native
from ._errors import DeliveryError

# An option whose doc is exactly "a, b or c" takes one of those strings.
_CHOICES = re.compile(r"^([a-z_]+(?:, [a-z_]+)*) or ([a-z_]+)$")

_KINDS: Dict[str, Any] = {"str": str, "int": int, "float": float, "bool": bool, "list": Sequence[str]}
_KIND_STUBS = {"str": "str", "int": "int", "float": "float", "bool": "bool", "list": "Sequence[str]"}

# Keywords of the native constructor that are the binding's, not core options.
_BINDING_TYPES: Dict[str, Any] = {
    "on_error": (Optional[Callable[[Dict[str, Any], DeliveryError], Any]], "Optional[OnError]"),
    "flush_at_exit": (bool, "bool"),
    "exit_timeout": (Optional[float], "Optional[float]"),
}

# Core defaults the binding replaces (tracker.rs sets them before the keywords):
# the value here, and how the stub (written once for every Python) describes it.
_BINDING_DEFAULTS: Dict[str, Any] = {
    "user_agent_suffix": (lambda: f"python/{sys.version_info[0]}.{sys.version_info[1]}", "python/X.Y"),
}


class Param(NamedTuple):
    """One parameter of ``Tracker(...)``."""

    name: str
    keyword_only: bool
    annotation: Any
    stub_type: str
    default: Any
    stub_default: str
    doc: str
    """The core's one-line doc; empty for the binding's own keywords."""
    shown: str
    """The default as the docstring shows it (``$INTERCOM_ACCESS_TOKEN``: read from there)."""


def _native_params() -> List[tuple]:
    """``(name, keyword_only, default)`` of the native constructor's signature
    (PyO3's ``__text_signature__``), without its ``**options``."""
    text = (_native.Tracker.__text_signature__ or "()").strip()[1:-1]
    params, keyword_only = [], False
    for part in (p.strip() for p in text.split(",")):
        if not part or part.startswith("$") or part.startswith("**"):
            continue
        if part == "*":
            keyword_only = True
            continue
        name, _, default = part.partition("=")
        import ast

        try:
            value = ast.literal_eval(default) if default else None
        except ValueError:
            value = ...
        params.append((name, keyword_only, value))
    return params


def _core_default(kind: str, text: str) -> Any:
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        return text == "true"
    return text


def _stub_literal(value: Any) -> str:
    if value is ... or value is None or isinstance(value, (bool, int, float)):
        return "..." if value is ... else repr(value)
    return json.dumps(value)


def tracker_params() -> List[Param]:
    """Every parameter of ``Tracker(...)``: the native constructor's (access
    token, region, the binding's own keywords) then each other core option."""
    options = {o[0]: o for o in _native.options()}
    params: List[Param] = []
    native = _native_params()
    names = {name for name, _, _ in native}
    for name, keyword_only, native_default in native:
        params.append(_param(name, keyword_only, options.get(name), native_default, True))
    for name, option in options.items():
        if name not in names:
            params.append(_param(name, True, option, None, False))
    return params


def _param(name: str, keyword_only: bool, option: Optional[tuple], native_default: Any, native: bool) -> Param:
    if option is None:  # a keyword of the binding
        annotation, stub_type = _BINDING_TYPES.get(name, (Any, "Any"))
        return Param(name, keyword_only, annotation, stub_type, native_default, _stub_literal(native_default), "",
                     repr(native_default))
    _, kind, default_text, doc = option
    annotation, stub_type = _KINDS.get(kind, Any), _KIND_STUBS.get(kind, "Any")
    choices = _CHOICES.match(doc)
    if choices and kind == "str":
        values = tuple(choices.group(1).split(", ")) + (choices.group(2),)
        annotation = Literal[values]  # type: ignore[valid-type]
        stub_type = "Literal[" + ", ".join(json.dumps(v) for v in values) + "]"
    unset = default_text == "" or default_text.startswith("$")  # "$ENV": read from the environment
    if native or unset:
        # None stands for the core's default (or the environment variable).
        default = native_default if native else None
        shown = "unset" if default_text == "" else default_text if unset else repr(_core_default(kind, default_text))
        return Param(name, keyword_only, Optional[annotation], f"Optional[{stub_type}]", default,
                     _stub_literal(default), doc, shown)
    if name in _BINDING_DEFAULTS:
        default = _BINDING_DEFAULTS[name][0]()
        return Param(name, keyword_only, annotation, stub_type, default, "...", doc, repr(default))
    default = _core_default(kind, default_text)
    return Param(name, keyword_only, annotation, stub_type, default, _stub_literal(default), doc, repr(default))


def tracker_signature() -> Any:
    """The ``inspect.Signature`` of ``Tracker(...)``, every option spelled out."""
    import inspect

    return inspect.Signature([
        inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY if p.keyword_only
                          else inspect.Parameter.POSITIONAL_OR_KEYWORD, default=p.default, annotation=p.annotation)
        for p in tracker_params()
    ])


def options_doc() -> str:
    """The options section of ``Tracker``'s docstring."""
    lines = ["Options (the core's, with its defaults; also trackcore.options()):", ""]
    for p in tracker_params():
        if p.doc:
            shown = p.shown if p.shown == "unset" else f"default {p.shown}"
            lines.append(f"    {p.name}: {p.stub_type}, {shown}")
            lines.append(f"        {p.doc}")
    return "\n".join(lines)


def stub_init() -> str:
    """``Tracker.__init__`` as the typing stub declares it (four-space class indent)."""
    lines = ["    def __init__(", "        self,"]
    star = False
    for p in tracker_params():
        if p.keyword_only and not star:
            lines.append("        *,")
            star = True
        lines.append(f"        {p.name}: {p.stub_type} = {p.stub_default},")
    lines.append("    ) -> None:")
    lines.append('        """Create a tracker. The keyword options are the core\'s (``trackcore.options()``):')
    lines.append("")
    for p in tracker_params():
        if p.doc:
            note = f" (default here: {_BINDING_DEFAULTS[p.name][1]})" if p.name in _BINDING_DEFAULTS else ""
            lines.append(f"        - ``{p.name}``: {p.doc}{note}")
    lines.append('        """')
    return "\n".join(lines) + "\n"


class _Lazy:
    """A class attribute computed on first access (``help()``, ``inspect``)."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._value: Any = None

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if self._value is None:
            self._value = self._build()
        return self._value


def describe_tracker(cls: type) -> None:
    """Give ``cls`` (the native ``Tracker``) the full signature and an options
    section in its docstring, both computed on first access."""
    native_doc = cls.__doc__ or ""
    cls.__signature__ = _Lazy(tracker_signature)  # type: ignore[attr-defined]
    cls.__doc__ = _Lazy(lambda: f"{native_doc.rstrip()}\n\n{options_doc()}\n")  # type: ignore[assignment]
