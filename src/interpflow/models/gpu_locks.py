"""GPU locks for a workstation where every job sees every GPU: each model job holds an flock on one
lock file per GPU, so jobs of one run, of two runs and of two users never share a GPU.

The lock folder is one for the whole machine (`/tmp/interpflow-gpus`, or INTERPFLOW_GPU_LOCKS), not
one per user: per-user folders would let two users' jobs take the same GPU. So the folder is made
world-writable and sticky (mode 1777, like /tmp: anyone can add a lock file, nobody can delete
another's) and each lock file readable by all (0644: flock needs only a read handle), whatever the
umask. A lock is released by the kernel when its process ends, even killed.

When every GPU is held the job waits, polling, and says so in its log, rather than piling onto a
GPU another job uses. INTERPFLOW_GPU_WAIT_S caps the wait (unset: as long as it takes).
"""

from __future__ import annotations

import fcntl
import os
import stat
import sys
import time
from pathlib import Path

from interpflow.errors import ConfigError, InterpflowError

DEFAULT_LOCK_DIR = "/tmp/interpflow-gpus"
FOLDER_MODE = 0o1777  # world-writable and sticky
LOCK_FILE_MODE = 0o644

_HELD: list[int] = []  # file descriptors of the locks this process holds, kept open until it exits


def lock_folder() -> Path:
    return Path(os.environ.get("INTERPFLOW_GPU_LOCKS") or DEFAULT_LOCK_DIR)


def wait_limit_s() -> float | None:
    """INTERPFLOW_GPU_WAIT_S as seconds; None (wait as long as it takes) when unset or empty."""
    value = os.environ.get("INTERPFLOW_GPU_WAIT_S", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise ConfigError(f"INTERPFLOW_GPU_WAIT_S is {value!r}; set it to a number of seconds >= 0, or unset it to wait "
                          "for a free GPU as long as it takes")
    return seconds


def prepare_folder(folder: Path) -> None:
    """Create the lock folder shared by every user (mode 1777 whatever the umask); fix the mode of one
    this user made earlier with a narrower one."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the GPU lock folder {folder}: {exc}; set INTERPFLOW_GPU_LOCKS to a folder "
                          "every user of this machine can write") from exc
    info = folder.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) != FOLDER_MODE:
        os.chmod(folder, FOLDER_MODE)  # mkdir's mode passes through the umask; chmod does not


def _open_lock_file(path: Path) -> int:
    """A read handle on `path`, created readable by all when missing.

    An existing file is opened without O_CREAT: Linux's fs.protected_regular refuses O_CREAT on
    another user's file in a sticky world-writable folder, even one this user may read."""
    while True:
        try:
            return os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            pass
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, LOCK_FILE_MODE)
        except FileExistsError:
            continue  # another job created it in between: open theirs
        os.fchmod(fd, LOCK_FILE_MODE)  # the umask may have narrowed it
        return fd


def _lock_file(folder: Path, index: int) -> int:
    path = folder / f"gpu{index}.lock"
    try:
        return _open_lock_file(path)
    except PermissionError as exc:
        owner = folder.stat().st_uid
        raise ConfigError(
            f"cannot open the GPU lock file {path} ({exc.strerror}): the folder {folder} belongs to user id {owner} and "
            f"does not let others add or read lock files; ask its owner to run `chmod 1777 {folder}` (and "
            f"`chmod 644 {folder}/*.lock`), or set INTERPFLOW_GPU_LOCKS to another folder shared by every user"
        ) from exc


def claim_free_gpu(n_devices: int, lock_dir: Path) -> int | None:
    """The first of `n_devices` GPUs no other process on this machine holds, locked for this
    process's life; None when all are held."""
    prepare_folder(lock_dir)
    for index in range(n_devices):
        fd = _lock_file(lock_dir, index)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _HELD.append(fd)
        return index
    return None


def wait_for_free_gpu(n_devices: int, lock_dir: Path, poll_s: float = 5.0, limit_s: float | None = None) -> int:
    """Like claim_free_gpu, but when all are held wait (polling every `poll_s`) until one is free;
    after `limit_s` seconds (None: never) raise an error naming the lock folder."""
    index = claim_free_gpu(n_devices, lock_dir)
    if index is not None:
        return index
    print(f"interpflow: all {n_devices} GPUs are held by other jobs (lock files in {lock_dir}); waiting for one "
          f"to be free{'' if limit_s is None else f' (at most {limit_s:g} s: INTERPFLOW_GPU_WAIT_S)'}",
          file=sys.stderr, flush=True)
    start = time.monotonic()
    while index is None:
        if limit_s is not None and time.monotonic() - start >= limit_s:
            raise InterpflowError(f"no GPU became free within INTERPFLOW_GPU_WAIT_S={limit_s:g} s (all {n_devices} are "
                              f"locked in {lock_dir}); wait for the other jobs, or raise or unset INTERPFLOW_GPU_WAIT_S")
        time.sleep(poll_s)
        index = claim_free_gpu(n_devices, lock_dir)
    print(f"interpflow: GPU {index} free after {time.monotonic() - start:.0f} s of waiting", file=sys.stderr, flush=True)
    return index
