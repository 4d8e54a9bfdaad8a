"""Turning pydantic validation errors into one clear line per problem.

`config.toml: generator.max_batch = 0: must be an integer from 1 to 64`
"""

from __future__ import annotations

import typing
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails


class ConfigError(Exception):
    """A config problem; str() is the operator-facing message (one line per problem)."""


_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _field_for(model: type[BaseModel], loc: tuple[Any, ...]) -> FieldInfo | None:
    """Walk nested models/dicts/lists along `loc` to the FieldInfo of the last key."""
    current: Any = model
    info: FieldInfo | None = None
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                # a discriminated-union tag or similar: skip it
                continue
            info = current.model_fields[part]
            current = info.annotation
        else:
            current = _inner_model(current)
            if (
                isinstance(current, type)
                and issubclass(current, BaseModel)
                and (isinstance(part, str) and part in current.model_fields)
            ):
                info = current.model_fields[part]
                current = info.annotation
    return info


def _inner_model(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin in (list, tuple, set, dict, typing.Union) or str(origin) in (
        "types.UnionType",
        "<class 'types.UnionType'>",
    ):
        for arg in reversed(get_args(annotation)):
            found = _inner_model(arg)
            if isinstance(found, type) and issubclass(found, BaseModel):
                return found
        return None
    if get_origin(annotation) is typing.Annotated:
        return _inner_model(get_args(annotation)[0])
    return annotation


def _bounds(info: FieldInfo) -> tuple[Any, Any]:
    low = high = None
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge | annotated_types.Gt):
            low = getattr(meta, "ge", None) if hasattr(meta, "ge") else meta.gt
        if isinstance(meta, annotated_types.Le | annotated_types.Lt):
            high = getattr(meta, "le", None) if hasattr(meta, "le") else meta.lt
    return low, high


def _kind(info: FieldInfo | None) -> str:
    ann = info.annotation if info else None
    if ann is int:
        return "an integer"
    if ann is float:
        return "a number"
    return "a value"


def _allowed(info: FieldInfo | None, err: ErrorDetails) -> str:
    etype = err["type"]
    ctx = err.get("ctx") or {}
    if etype == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    if etype == "enum":
        return f"must be one of {ctx.get('expected', '')}"
    if (
        etype in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}
        or (etype in _TYPE_WORDS and info is not None and any(_bounds(info)))
    ) and info is not None:
        low, high = _bounds(info)
        kind = _kind(info) if etype not in _TYPE_WORDS else _TYPE_WORDS[etype]
        above = any(isinstance(m, annotated_types.Gt) for m in info.metadata)
        below = any(isinstance(m, annotated_types.Lt) for m in info.metadata)
        if low is not None and high is not None and not (above or below):
            return f"must be {kind} from {low} to {high}"
        parts = []
        if low is not None:
            parts.append(f"greater than {low}" if above else f"at least {low}")
        if high is not None:
            parts.append(f"less than {high}" if below else f"at most {high}")
        if parts:
            return f"must be {kind} " + " and ".join(parts)
    if etype in _TYPE_WORDS:
        literal = _literal_choices(info)
        if literal:
            return f"must be one of {literal}"
        return f"must be {_TYPE_WORDS[etype]}"
    if etype == "extra_forbidden":
        return "is not a known key"
    if etype == "missing":
        return "is required"
    return err.get("msg", "is not valid").removeprefix("Value error, ")


def _literal_choices(info: FieldInfo | None) -> str:
    if info is None:
        return ""
    ann = info.annotation
    if get_origin(ann) is Literal:
        return ", ".join(repr(a) for a in get_args(ann))
    return ""


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    parent = _model_at(model, loc[:-1])
    return sorted(parent.model_fields) if parent is not None else []


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation can hold (through lists, dicts, unions, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model at `loc`; a discriminated union's tag in `loc` (e.g. `mastodon` in
    `accounts.0.mastodon.key`) picks the member whose Literal field has that value."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue  # a list index: the same annotation
        candidates = _models_in(current)
        tagged = [m for m in candidates if _has_tag(m, part)]
        if tagged and not any(part in m.model_fields for m in candidates):
            current = tagged[0]
            continue
        owner = next((m for m in candidates if part in m.model_fields), None)
        if owner is None:
            return None
        current = owner.model_fields[part].annotation
    models = _models_in(current)
    return models[0] if len(models) == 1 else None


def _has_tag(model: type[BaseModel], tag: Any) -> bool:
    return any(
        get_origin(f.annotation) is Literal and get_args(f.annotation) == (tag,)
        for f in model.model_fields.values()
    )


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"mastodon", "lemmy"} and out.endswith("]"):
            continue  # discriminated-union tag inserted by pydantic
        else:
            out += ("." if out else "") + str(part)
    return out


def describe_validation_error(source: str, model: type[BaseModel], error: ValidationError) -> str:
    """One line per problem: `<source>: <key path> = <value>: <what is allowed>`."""
    lines = []
    for err in error.errors(include_url=False):
        loc = tuple(err["loc"])
        info = _field_for(model, loc)
        path = _dotted(loc)
        allowed = _allowed(info, err)
        if err["type"] == "extra_forbidden":
            keys = _known_keys(model, loc)
            hint = f" (known keys: {', '.join(keys)})" if keys else ""
            lines.append(f"{source}: {path}: {allowed}{hint}")
        elif err["type"] == "missing":
            lines.append(f"{source}: {path}: {allowed}")
        else:
            value = err.get("input")
            shown = _show(value, path)
            if shown is None:  # a table: name the key, never print its values
                lines.append(f"{source}: {path or '(top level)'}: {allowed}")
            else:
                lines.append(f"{source}: {path} = {shown}: {allowed}")
    return scrub("\n".join(lines), _secrets_in(error))


_SECRET_WORDS = ("token", "password", "secret", "apikey", "jwt", "key")


def _is_secret_key(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _show(value: Any, path: str) -> str | None:
    """How a bad value is shown: secrets hidden, URL passwords masked, tables not at all
    (None), lists only when they hold plain values."""
    from fedibot.storage.database import mask_url

    last = path.rsplit(".", 1)[-1]
    if _is_secret_key(last):
        return "<hidden>"
    if isinstance(value, str):
        if "://" in value or "@" in value:
            value = mask_url(value)
        return repr(value) if len(value) < 80 else repr(value[:77] + "...")
    if isinstance(value, dict):
        return None
    if isinstance(value, list | tuple):
        if not all(isinstance(item, str | int | float | bool) for item in value):
            return None
        text = repr([mask_url(v) if isinstance(v, str) and "://" in v else v for v in value])
        return text if len(text) < 80 else text[:77] + "..."
    return repr(value) if value is not None else "(empty)"


def _secrets_in(error: ValidationError) -> set[str]:
    """Every value under a secret-looking key anywhere in the inputs of the errors."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and _is_secret_key(key) and isinstance(item, str):
                    found.add(item)
                else:
                    walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    for err in error.errors(include_url=False):
        walk(err.get("input"))
        if _is_secret_key(str(err["loc"][-1]) if err["loc"] else "") and isinstance(
            err.get("input"), str
        ):
            found.add(err["input"])
    return {s for s in found if len(s) >= 4}


def scrub(text: str, secrets: set[str] | frozenset[str] = frozenset()) -> str:
    """`text` with every given secret replaced by *** and every URL password masked."""
    from fedibot.storage.database import mask_url_passwords

    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return mask_url_passwords(text)
