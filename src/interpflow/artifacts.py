"""Reading and writing artifacts. Every write goes to a temporary name in the same folder and is
renamed into place, so a killed job never leaves a file that looks complete."""

from __future__ import annotations

import glob
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pandas as pd

from interpflow.errors import ArtifactError

if TYPE_CHECKING:
    import torch

# torch is imported by the functions that write or read tensors: the jobs that only read and write
# tables (evaluation, the leaderboard, data) then start without it.


def _file_mode() -> int:
    """What open() would give a new file: 0o666 less the umask (mkstemp's own 0o600 would hide
    results from the rest of a group on a shared cluster)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it to `path`, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A job killed with SIGKILL leaves its temporary file; the job that rewrites the artifact (the
    # only writer of that path: Snakemake runs one job per output) removes it.
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, FILE_MODE)
            with open(tmp_path, "rb") as written:  # on disk before the name says it is whole
                os.fsync(written.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        df.reset_index(drop=True).to_parquet(tmp, index=False)


# What a damaged file raises when read: pyarrow's ArrowInvalid is a ValueError, ArrowIOError an
# OSError, JSON and UTF-8 decoding errors are ValueErrors; safetensors has its own (added when imported).
DAMAGED = (ValueError, OSError)


@contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Turn an error while reading the artifact `path` into an ArtifactError naming it. A missing file
    stays a FileNotFoundError (it names its path): that is a stage not run yet, not damage."""
    from safetensors import SafetensorError

    try:
        yield
    except FileNotFoundError:
        raise
    except (*DAMAGED, SafetensorError) as error:
        detail = str(error).splitlines()[0][:300] if str(error) else ""
        raise ArtifactError(path, f"{type(error).__name__}: {detail}") from error


def read_parquet(path: str | Path) -> pd.DataFrame:
    with reading(path):
        return pd.read_parquet(path)


def read_json(path: str | Path):
    with reading(path):
        return json.loads(Path(path).read_text(encoding="utf-8"))


@contextmanager
def open_tensors(path: str | Path) -> Iterator:
    """A safetensors file opened lazily (safe_open: tensors read when asked for), errors naming its path."""
    from safetensors import SafetensorError, safe_open

    with reading(path):
        file = safe_open(str(path), "pt")
    try:
        with file:
            yield file
    except SafetensorError as error:  # a tensor that is not there, or that cannot be read
        raise ArtifactError(path, f"SafetensorError: {error}") from error


def write_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    meta = {k: str(v) for k, v in (metadata or {}).items()}
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    with reading(path):
        return load_file(str(path))


def read_tensor_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata saved beside a safetensors file's tensors."""
    with open_tensors(path) as f:
        return dict(f.metadata() or {})


def write_json(obj, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str))


def write_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


SAFETENSORS_DTYPES = {"torch.float32": "F32", "torch.float16": "F16", "torch.bfloat16": "BF16", "torch.int64": "I64"}


class RowStream:
    """A safetensors file whose large 2-D tensor `name` [rows, width] is filled in blocks of rows,
    in any order, straight to disk: memory holds one block, never the tensor. `small` tensors are
    written up front; metadata (a few hundred characters at most) at `close`.

    Layout: the large tensor first, then the small ones; the JSON header keeps room for metadata."""

    HEADER_ROOM = 1024

    def __init__(self, file, name: str, rows: int, width: int, dtype: torch.dtype, small: dict[str, torch.Tensor]):
        import torch

        self.file, self.width, self.dtype = file, width, dtype
        self.row_bytes = width * torch.empty(0, dtype=dtype).element_size()
        end = rows * self.row_bytes
        self.tensors = {name: {"dtype": SAFETENSORS_DTYPES[str(dtype)], "shape": [rows, width], "data_offsets": [0, end]}}
        blobs = []
        for key, tensor in small.items():
            blob = tensor.contiguous().numpy().tobytes()
            self.tensors[key] = {"dtype": SAFETENSORS_DTYPES[str(tensor.dtype)], "shape": list(tensor.shape),
                                 "data_offsets": [end, end + len(blob)]}
            blobs.append(blob)
            end += len(blob)
        header = self._header({})
        self.header_size = (len(header) + self.HEADER_ROOM + 7) // 8 * 8
        self.data_start = 8 + self.header_size
        file.seek(0)
        file.write(self.header_size.to_bytes(8, "little") + header.ljust(self.header_size))
        file.seek(self.data_start + rows * self.row_bytes)
        file.write(b"".join(blobs))
        file.truncate(self.data_start + end)

    def _header(self, metadata: dict) -> bytes:
        return json.dumps({"__metadata__": {k: str(v) for k, v in metadata.items()}, **self.tensors}).encode()

    def write(self, row: int, block: torch.Tensor) -> None:
        """Rows `row` .. `row + len(block)` of the large tensor."""
        if block.shape[-1] != self.width:
            raise ValueError(f"a block of width {block.shape[-1]} for a tensor of width {self.width}")
        import torch

        data = block.to(self.dtype).contiguous()
        raw = data.view(torch.int16) if self.dtype == torch.bfloat16 else data  # numpy has no bfloat16
        self.file.seek(self.data_start + row * self.row_bytes)
        self.file.write(raw.numpy().tobytes())

    def close(self, metadata: dict | None = None) -> None:
        header = self._header(metadata or {})
        if len(header) > self.header_size:
            raise ValueError("metadata too large for the room kept in the header")
        self.file.seek(8)
        self.file.write(header.ljust(self.header_size))
