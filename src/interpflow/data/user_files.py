"""Reading the user's own files: concept lists, AxBench-format data, instruction lists, question sets,
corpora, latent labels, pretrained SAE folders.

Every read goes through here, so that every way a file can be unreadable (missing, empty, not UTF-8,
bad CSV, bad JSON or JSON Lines, not Parquet, missing columns, the wrong shape) stops the run with one
ConfigError naming the file, the config key it came from, what is wrong (with the line where there
is one) and how to fix it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from interpflow.errors import ConfigError


def problem(path: str | Path, key: str, what: str, fix: str) -> ConfigError:
    """The one form of every message about a user file."""
    return ConfigError(f"{path} (from {key}): {what}; {fix}")


def is_remote(path: str | Path) -> bool:
    return "://" in str(path)


def existing_file(path: str | Path, key: str) -> Path:
    path = Path(path)
    if path.is_dir():
        raise problem(path, key, "is a folder, not a file", "point the key at a file")
    if not path.is_file():
        raise problem(path, key, "does not exist", "check the path (a relative path is read from the folder "
                                                   "Snakemake runs in)")
    return path


def _read_bytes(path: str | Path, key: str) -> bytes:
    if not is_remote(path):
        return existing_file(path, key).read_bytes()
    import fsspec  # remote files (hf://, s3://...) as pandas reads them

    try:
        with fsspec.open(str(path), "rb") as file:
            return file.read()
    except (OSError, ValueError, ImportError) as error:
        raise problem(path, key, f"cannot be read ({error})", "check the address and the network") from None


def read_text(path: str | Path, key: str) -> str:
    """The file's text, as UTF-8 (a byte-order mark is allowed); an empty or blank file is an error."""
    data = _read_bytes(path, key)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise problem(path, key, f"is not UTF-8 text (byte 0x{data[error.start]:02x} on line {line})",
                      "save it as UTF-8") from None
    if not text.strip():
        raise problem(path, key, "is empty", "fill it in, or point the key at another file")
    return text


def read_json(path: str | Path, key: str, shape: str) -> Any:
    """A JSON document; `shape` says what it should hold (for the message)."""
    text = read_text(path, key)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise problem(path, key, f"is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})",
                      f"it must be {shape}") from None


def read_jsonl(path: str | Path, key: str, shape: str) -> list[tuple[int, Any]]:
    """(line number, value) for each non-blank line of a JSON Lines file."""
    records = []
    for number, line in enumerate(read_text(path, key).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            raise problem(path, key, f"line {number} is not valid JSON ({error.msg}, column {error.colno})",
                          f"each line must be {shape}") from None
    return records


def read_lines(path: str | Path, key: str) -> list[tuple[int, str]]:
    """(line number, stripped text) for each non-blank line of a text file."""
    lines = enumerate(read_text(path, key).splitlines(), start=1)
    return [(number, line.strip()) for number, line in lines if line.strip()]


def read_csv(path: str | Path, key: str, required: Iterable[str] = ()) -> pd.DataFrame:
    """A CSV table with a header line, every cell a string; blank lines are skipped, and each row's
    index is its line number. A row with more or fewer fields than the header is an error (pandas
    would quietly take an extra first field as the row's index)."""
    reader = csv.reader(io.StringIO(read_text(path, key), newline=""), strict=True)
    header, rows, lines = None, [], []
    try:
        for row in reader:
            if not row:  # an empty line
                continue
            if header is None:
                header = [cell.strip() for cell in row]
            elif len(row) != len(header):
                raise problem(path, key, f"line {reader.line_num} has {len(row)} fields but the header has "
                                         f"{len(header)}", "give every row as many fields as the header, and quote "
                                                           "fields that hold commas")
            else:
                rows.append(row)
                lines.append(reader.line_num)
    except csv.Error as error:
        raise problem(path, key, f"is not valid CSV (line {reader.line_num}: {error})",
                      "close every quoted field, and quote fields that hold commas") from None
    return with_columns(pd.DataFrame(rows, columns=header, index=lines), path, key, required)


def read_parquet(path: str | Path, key: str, required: Iterable[str] = ()) -> pd.DataFrame:
    """A Parquet table, local or remote (hf://...: read through huggingface_hub)."""
    if not is_remote(path):
        path = existing_file(path, key)
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError, ImportError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise problem(path, key, f"cannot be read as Parquet ({first_line})",
                      "give a Parquet file (pandas: DataFrame.to_parquet), or check the address") from None
    return with_columns(frame, path, key, required)


def with_columns(frame: pd.DataFrame, path: str | Path, key: str, required: Iterable[str]) -> pd.DataFrame:
    missing = [column for column in required if column not in frame.columns]
    if missing:
        named = ", ".join(f"`{column}`" for column in missing)
        raise problem(path, key, f"has no {named} column{'s' if len(missing) > 1 else ''} (its columns: "
                                 f"{', '.join(map(str, frame.columns)) or 'none'})", f"add {named}")
    return frame


def read_table(path: str | Path, key: str, required: Iterable[str] = ()) -> pd.DataFrame:
    """A table from .parquet, .csv, .jsonl (one object a line) or .json (a list of objects)."""
    suffix = Path(str(path)).suffix
    if suffix == ".parquet":
        return read_parquet(path, key, required)
    if suffix == ".csv":
        return read_csv(path, key, required)
    if suffix == ".jsonl":
        records = read_jsonl(path, key, "one JSON object")
        bad = next((number for number, record in records if not isinstance(record, dict)), None)
        if bad is not None:
            raise problem(path, key, f"line {bad} is not a JSON object", "give one object ({\"column\": value, ...}) a line")
        return with_columns(pd.DataFrame([record for _, record in records]), path, key, required)
    if suffix == ".json":
        records = read_json(path, key, "a list of objects")
        fix = "give a JSON list of objects ([{\"column\": value, ...}, ...])"
        if not isinstance(records, list):
            raise problem(path, key, f"holds {json_kind(records)}, not a list of objects", fix)
        odd = next((i for i, record in enumerate(records) if not isinstance(record, dict)), None)
        if odd is not None:
            raise problem(path, key, f"item {odd} is {json_kind(records[odd])}, not an object", fix)
        return with_columns(pd.DataFrame(records), path, key, required)
    raise problem(path, key, f"has the suffix {suffix or '(none)'!r}", "give a .parquet, .csv, .jsonl or .json file")


def json_kind(value: Any) -> str:
    """How a JSON value is named in a message."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "true or false", type(None): "null"}
    return names.get(type(value), "a number")


def check_tensor_file(path: str | Path, key: str) -> None:
    """A safetensors file whose header reads and whose size covers every tensor it lists (reads the header only)."""
    from safetensors import SafetensorError, safe_open

    path = existing_file(path, key)
    try:
        with safe_open(str(path), "pt"):
            pass
    except SafetensorError as error:
        raise problem(path, key, f"is not a whole safetensors file ({error})",
                      "copy or save it again, or point the key at the right file") from None
