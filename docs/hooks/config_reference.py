"""MkDocs hook: writes the configuration reference into docs/configuration.md at build time.

Every key of config/config.yaml and of each config group (config/{generator,judge,model,sae,method}/)
becomes a table row: its dotted name, its default, what the schema allows (workflow/schemas/
config.schema.yaml; for a method, its class's `settings`) and the comment written beside it. The page
holds the marker `<!-- config-reference -->` where the tables go, so a renamed or new key shows up
in the docs without anyone copying it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
MARKER = "<!-- config-reference -->"
KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")
COMMENT_LINE = re.compile(r"^\s+#\s?(?P<text>.*)$")
# config group -> where its keys sit in the composed config ("*": any name)
GROUPS = {"generator": ["generator"], "judge": ["judge"], "model": ["models", "*"], "sae": ["saes", "*"],
          "method": ["methods", "*"]}


def _comment_of(rest: str) -> str:
    """The text after the first ` #` of a line's value part (no value here holds one)."""
    _, hash_, comment = rest.partition(" #")
    return comment.strip() if hash_ else ""


def key_comments(path: Path) -> dict[tuple[str, ...], str]:
    """Dotted key path -> the comment beside it (and its indented continuation lines)."""
    comments: dict[tuple[str, ...], str] = {}
    stack: list[tuple[int, str]] = []
    last: tuple[str, ...] | None = None
    for line in path.read_text().splitlines():
        key_match = KEY_LINE.match(line)
        if key_match and not line.lstrip().startswith("#"):
            indent = len(key_match["indent"])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, key_match["key"]))
            last = tuple(key for _, key in stack)
            comments[last] = _comment_of(key_match["rest"])
            continue
        continuation = COMMENT_LINE.match(line)
        if continuation and last is not None and comments.get(last):
            comments[last] += " " + continuation["text"].strip()
        elif line.strip() and not line.lstrip().startswith("-"):
            last = None
    return comments


def leaves(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, value) of every setting: mappings are walked into, everything else is a value."""
    if isinstance(data, dict) and data:
        return [item for key, value in data.items() for item in leaves(value, (*prefix, str(key)))]
    return [(prefix, data)]


def schema_at(schema: dict, path: list[str], data: Any) -> dict | None:
    """The rule for `path`; `data` is what `schema` describes (it picks the branch of an if/then/else)."""
    node: Any = schema
    for key in path:
        if not isinstance(node, dict):
            return None
        node = _branch(node, data)
        if key in node.get("properties", {}):
            node = node["properties"][key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
        data = data.get(key) if isinstance(data, dict) else None
    return node


def _branch(node: dict, data: Any) -> dict:
    """The rule as `data` meets it: `then` or `else` of a conditional (`if`), and every part of an
    `allOf`, merged with the rule's own properties."""
    parts = [node.get("then" if jsonschema.Draft202012Validator(node["if"]).is_valid(data) else "else", {})
             if "if" in node else {}]
    parts += [_branch(part, data) for part in node.get("allOf", [])]
    merged = {key: value for key, value in node.items() if key not in ("if", "then", "else", "allOf")}
    for part in parts:
        part = _branch(part, data) if "if" in part or "allOf" in part else part
        merged = {**merged, **part, "properties": {**merged.get("properties", {}), **part.get("properties", {})}}
    return merged


def allowed(rule: dict | None) -> str:
    """What a JSON Schema rule allows, in a few words."""
    if not rule:
        return ""
    if "description" in rule:
        return str(rule["description"])
    if "enum" in rule:
        return " | ".join(json.dumps(value) for value in rule["enum"])
    kinds = rule.get("type", "")
    words = [" or ".join(kinds) if isinstance(kinds, list) else str(kinds)]
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<",
              "minLength": "length >=", "minItems": "items >="}
    words += [f"{sign} {rule[key]}" for key, sign in bounds.items() if key in rule]
    if "items" in rule and isinstance(rule["items"], dict):
        words.append(f"of ({allowed(rule['items'])})")
    return ", ".join(word for word in words if word)


def cell(text: str, code: bool = False) -> str:
    """Text for a table cell: no pipes or line breaks, and outside code no raw `<...>` (HTML to Markdown)."""
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if code else text.replace("<", "&lt;").replace(">", "&gt;")


def table(rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["| key | default | allowed | what it does |", "|---|---|---|---|"]
    lines += [f"| `{key}` | `{cell(default, code=True)}` | {cell(rule)} | {cell(comment)} |" for key, default, rule, comment in rows]
    return "\n".join(lines)


def rows_of(path: Path, schema_path: list[str], schema: dict, settings: dict | None = None):
    data = yaml.safe_load(path.read_text()) or {}
    # the file's keys sit at schema_path ("*": any name) of the composed config
    composed: Any = data
    for key in reversed(schema_path):
        composed = {key: composed}
    comments = key_comments(path)
    rows = []
    for keys, value in leaves({k: v for k, v in data.items() if k != "defaults"}):
        if settings is not None:
            rule = settings.get(keys[0]) if len(keys) == 1 else None
        else:
            rule = schema_at(schema, [*schema_path, *keys], composed)
        # the keys of an inline mapping ({a: 1, b: 2}) have no line of their own: the comment is on the line
        # of the nearest key that has one
        written = next(keys[:n] for n in range(len(keys), 0, -1) if keys[:n] in comments or n == 1)
        comment = comments.get(written, "")
        rows.append((".".join(keys), json.dumps(value, ensure_ascii=False), allowed(rule), comment))
    return rows


def reference() -> str:
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    parts = ["## `config/config.yaml`", "", "The base of every run; an experiment overrides some of it.", "",
             table(rows_of(REPO / "config/config.yaml", [], schema))]
    for group, schema_path in GROUPS.items():
        where = ".".join(schema_path).replace("*", "<name>")
        parts += ["", f"## Config group `{group}/`", "",
                  f"Each file of `config/{group}/` is one choice; its keys land under `{where}`."]
        for path in sorted((REPO / "config" / group).glob("*.yaml")):
            settings = _method_settings(path) if group == "method" else None
            parts += ["", f"### `{group}/{path.stem}`", "", table(rows_of(path, schema_path, schema, settings))]
    return "\n".join(parts) + "\n"


def _method_settings(path: Path) -> dict:
    """A method's allowed settings are declared on its class (`settings`), not in the schema."""
    sys.path.insert(0, str(REPO / "src"))
    from interpflow.methods import METHODS

    name = (yaml.safe_load(path.read_text()) or {}).get("name", path.stem)
    return {"name": {"description": "the method's registered name"}, **getattr(METHODS.get(name), "settings", {})}


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, reference())
    return markdown


if __name__ == "__main__":  # print the reference, e.g. to read it without building the site
    print(reference())
