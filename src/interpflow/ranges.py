"""Allowed values of settings, written as JSON Schema, and messages that say what is wrong with one.

The config schema (workflow/schemas/config.schema.yaml) and each method's `settings` (its class in
methods/) are checked with `problems`, which turns every schema error into one line naming the key,
its value and what is allowed: "methods.probe.epochs is -3; it must be an integer >= 1".
The builders below keep the methods' declarations short.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError


def integer(minimum: int | None = None, maximum: int | None = None, nullable: bool = False) -> dict:
    return _bounded("integer", nullable, minimum=minimum, maximum=maximum)


def number(minimum: float | None = None, maximum: float | None = None, above: float | None = None,
           below: float | None = None, nullable: bool = False) -> dict:
    """A number in [minimum, maximum]; `above` / `below` are exclusive bounds."""
    return _bounded("number", nullable, minimum=minimum, maximum=maximum, exclusiveMinimum=above, exclusiveMaximum=below)


def choice(*values: Any) -> dict:
    return {"enum": list(values)}


def text(non_empty: bool = True, nullable: bool = False, contains: tuple[str, ...] = ()) -> dict:
    """A string; `contains`: placeholders such as "{concept}" it must include."""
    schema = _bounded("string", nullable, minLength=1 if non_empty else None)
    if contains:
        schema["pattern"] = "".join(f"(?=[\\s\\S]*{_escape(part)})" for part in contains)
        schema["description"] = f"a text containing {' and '.join(contains)}"
    return schema


def flag() -> dict:
    return {"type": "boolean"}


def list_of(items: dict, min_items: int = 1) -> dict:
    return {"type": "array", "items": items, "minItems": min_items}


def _bounded(kind: str, nullable: bool, **bounds) -> dict:
    schema = {"type": [kind, "null"] if nullable else kind}
    schema.update({key: value for key, value in bounds.items() if value is not None})
    return schema


def _escape(part: str) -> str:
    return "".join(f"\\{c}" if c in "{}[]().*+?^$|\\" else c for c in part)


SEED = integer()
COUNT = integer(1)                 # sizes, steps, epochs, batch sizes
RATE = number(above=0)             # learning rates, regularisation strengths
NON_NEGATIVE = number(0)           # weight decays, loss coefficients
FRACTION = number(0, 1)


# --- messages -------------------------------------------------------------------------------

TYPES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
         "array": "a list", "object": "a mapping of keys to values", "null": "null"}
BOUNDS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))


def allowed(schema: dict) -> str:
    """What `schema` allows, in words: "an integer >= 1", "one of offline, openai", "null or a string"."""
    if not isinstance(schema, dict):
        return "nothing (remove it)" if schema is False else "anything"
    if "description" in schema:
        return schema["description"]
    if "const" in schema:
        return show(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(show(v) for v in schema["enum"])
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    words = [_one_type(kind, schema) for kind in kinds if kind != "null"] or ["a value"]
    return " or ".join(words + (["null"] if "null" in kinds else []))


def _one_type(kind: str, schema: dict) -> str:
    words = TYPES.get(kind, kind)
    if kind in ("integer", "number"):
        bounds = [f"{sign} {show(schema[key])}" for key, sign in BOUNDS if key in schema]
        words += " " + " and ".join(bounds) if bounds else ""
    if kind == "string":
        words = "a non-empty string" if schema.get("minLength", 0) >= 1 else words
        words += f" matching {schema['pattern']}" if "pattern" in schema else ""
    if kind == "array":
        items = _plural(allowed(schema["items"])) if "items" in schema else "items"
        fewest, most = schema.get("minItems", 0), schema.get("maxItems")
        size = f"{fewest} " if fewest == most else f"at least {fewest} " if fewest > 1 else ""
        words = f"a {'non-empty ' if fewest == 1 and most is None else ''}list of {size}{items}"
        words += " without repeats" if schema.get("uniqueItems") else ""
    return words


def _plural(words: str) -> str:
    """"an integer >= 1" -> "integers >= 1", for list items."""
    for single, many in (("an integer", "integers"), ("a number", "numbers"), ("a non-empty string", "non-empty strings"),
                         ("a string", "strings")):
        if words.startswith(single):
            return many + words[len(single):]
    if words.startswith("one of "):
        return "values among " + words[len("one of "):]
    return f"items each {words}"


def show(value: Any) -> str:
    """A value as the user wrote it in YAML or an override."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


def key_of(parts) -> str:
    """"methods.probe.epochs", "steering.factors[1]"."""
    key = ""
    for part in parts:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


# JSON Schema counts 3.0 as an integer; `range(3.0)` in a training loop does not.
Validator = validators.extend(Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool)))


def problems(instance: Any, schema: dict, prefix: tuple = ()) -> list[str]:
    """One line per way `instance` breaks `schema`, keys written from `prefix` down."""
    errors = sorted(Validator(schema).iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    return [line for err in errors for line in _lines(err, prefix)]


def _lines(err: ValidationError, prefix: tuple) -> list[str]:
    path = (*prefix, *err.absolute_path)
    key = key_of(path) or "the config"
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(known))
        where = key_of(path) or "the top level of the config"
        return [f"{key_of((*path, name))} is not a setting (set to {show(err.instance[name])}); {where} takes: "
                f"{', '.join(known) or 'no keys'}" for name in extra]
    if err.validator == "required":
        missing = [name for name in err.validator_value if name not in err.instance]
        return [f"{key_of((*path, name))} is missing; it must be "
                f"{allowed(err.schema.get('properties', {}).get(name, {}))}" for name in missing]
    if "propertyNames" in err.schema_path:  # the error is about a key of `path`, not a value
        return [f"{key} has the key {show(err.instance)}; its keys must be {allowed(err.schema)}"]
    return [f"{key} is {show(err.instance)}; it must be {allowed(err.schema)}"]
