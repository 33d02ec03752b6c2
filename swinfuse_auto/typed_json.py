"""Typed JSON <-> frozen dataclasses, validated once with the JSON path of every problem.

Plans are edited by hand, so a typo must fail loudly at load time with the exact location
(``configuration.patch_size[1]: expected int, found '64'``) rather than deep inside training.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, TypeVar, Union

from swinfuse_auto.errors import PlanError

T = TypeVar("T")


def to_jsonable(obj: Any) -> Any:
    """Dataclasses -> dicts, tuples -> lists, enums -> values, recursively."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if hasattr(obj, "value") and type(obj).__module__ != "builtins":
        return obj.value
    return obj


def _unknown_keys(cls: type, path: str, unknown: list[str], valid: list[str]) -> str:
    """The first unknown key with its JSON path and the closest valid name (a typo, mostly), or
    its new name when ``cls.RENAMED_KEYS`` says it was renamed."""
    where = f"{path}.{unknown[0]}" if path else unknown[0]
    renamed = getattr(cls, "RENAMED_KEYS", {}).get(unknown[0])
    close = [renamed] if renamed else difflib.get_close_matches(unknown[0], valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    more = f" (unknown too: {', '.join(unknown[1:])})" if len(unknown) > 1 else ""
    return f"{where}: unknown key.{hint} Valid keys: {', '.join(valid)}.{more}"


def _fail(path: str, expected: str, value: Any) -> PlanError:
    return PlanError(f"{path or '(top level)'}: expected {expected}, found {value!r}.")


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, path)
            except PlanError as exc:
                errors.append(str(exc))
        raise PlanError(errors[0])
    if dataclasses.is_dataclass(tp):
        return from_jsonable(tp, value, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _fail(path, "a list", value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise _fail(path, f"a list of {len(args)} values", value)
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is list:
        if not isinstance(value, list):
            raise _fail(path, "a list", value)
        return [_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(path, "an object", value)
        return {str(k): _convert(args[1], v, f"{path}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(path, "a number", value)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(path, "an integer", value)
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise _fail(path, tp.__name__, value)
        return value
    if isinstance(tp, type) and issubclass(tp, str):  # str enums
        try:
            return tp(value)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in tp)  # type: ignore[attr-defined]
            raise _fail(path, f"one of {choices}", value) from None
    raise TypeError(f"unsupported field type {tp!r} at {path}")


def from_jsonable(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass ``cls`` from JSON data, rejecting unknown, missing and mistyped keys."""
    if not isinstance(data, dict):
        raise _fail(path, "an object", data)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        raise PlanError(_unknown_keys(cls, path, unknown, sorted(fields)))
    kwargs = {}
    for name, field in fields.items():
        sub = f"{path}.{name}" if path else name
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise PlanError(f"{sub}: missing required key.")
            continue
        kwargs[name] = _convert(hints[name], data[name], sub)
    instance = cls(**kwargs)
    validate = getattr(instance, "validate", None)
    if callable(validate):
        validate(path)
    return instance
