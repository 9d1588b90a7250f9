"""GPU locks shared by every user of a workstation: real flocks held by real processes.

There is no CUDA here: the lock functions take the device count as an argument. When the tests run
as root, the waiting process runs as the `nobody` user, so "another user" is a real other user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from interpflow.errors import ConfigError
from interpflow.models.gpu_locks import FOLDER_MODE, claim_free_gpu

SRC = str(Path(__file__).resolve().parents[2] / "src")

HOLD_ALL = """
import os, sys, time
from pathlib import Path
from interpflow.models.gpu_locks import claim_free_gpu
os.umask(0o077)  # the narrowest umask: the folder and files must still serve other users
held = [claim_free_gpu(int(sys.argv[2]), Path(sys.argv[1])) for _ in range(int(sys.argv[2]))]
print(held, flush=True)
time.sleep(600)
"""

WAIT = """
import sys
from pathlib import Path
from interpflow.models.gpu_locks import wait_for_free_gpu
limit = float(sys.argv[3]) if len(sys.argv) > 3 else None
print(wait_for_free_gpu(int(sys.argv[2]), Path(sys.argv[1]), poll_s=0.1, limit_s=limit), flush=True)
"""


def as_user(uid: int, gid: int) -> dict:
    """Popen arguments that run the lock code as user `uid` (root only), with an interpreter that user
    may run (this venv's may sit under root's home: then the system's; the lock code needs only the
    standard library); {} when none can."""
    if os.getuid() != 0:
        return {}
    for executable in (sys.executable, shutil.which("python3") or "", "/usr/bin/python3"):
        try:
            done = subprocess.run([executable, "-c", "import interpflow.models.gpu_locks"], user=uid, group=gid,
                                  env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, timeout=60)
        except OSError:
            continue
        if done.returncode == 0:
            return {"user": uid, "group": gid, "executable": executable}
    return {}


def other_user() -> dict:
    """As root: run as `nobody`, a real second user; otherwise as this user ({})."""
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return {}
    return as_user(nobody.pw_uid, nobody.pw_gid)


@pytest.fixture()
def shared_tmp():
    """A folder under /tmp that every user can enter (pytest's tmp_path is private to this user)."""
    folder = Path(tempfile.mkdtemp(prefix="interpflow-locks-test-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def python(script: str, *args: str, executable: str = sys.executable, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen([executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kwargs)


def test_another_user_waits_for_a_gpu_and_gets_the_one_freed(shared_tmp):
    """One process (umask 077) holds both GPUs; another user's job waits, saying so and where, and
    takes a GPU as soon as the first process ends."""
    locks = shared_tmp / "gpus"
    holder = python(HOLD_ALL, str(locks), "2")
    try:
        assert holder.stdout.readline().strip() == "[0, 1]"
        assert stat.S_IMODE(locks.stat().st_mode) == FOLDER_MODE
        assert {stat.S_IMODE(p.stat().st_mode) for p in locks.glob("*.lock")} == {0o644}
        waiter = python(WAIT, str(locks), "2", **other_user())
        time.sleep(2.0)
        assert waiter.poll() is None, waiter.communicate()
        holder.kill()
        holder.wait()
        out, err = waiter.communicate(timeout=60)
        assert waiter.returncode == 0, err
        assert out.strip() in ("0", "1")
        assert f"all 2 GPUs are held by other jobs (lock files in {locks}); waiting" in err
        assert "free after" in err
    finally:
        holder.kill()
        holder.wait()


def test_the_wait_limit_stops_the_job_with_the_lock_folder_named(shared_tmp):
    locks = shared_tmp / "gpus"
    holder = python(HOLD_ALL, str(locks), "1")
    try:
        assert holder.stdout.readline().strip() == "[0]"
        waiter = python(WAIT, str(locks), "1", "0.5")
        out, err = waiter.communicate(timeout=60)
        assert waiter.returncode != 0
        assert f"no GPU became free within INTERPFLOW_GPU_WAIT_S=0.5 s (all 1 are locked in {locks})" in err
    finally:
        holder.kill()
        holder.wait()


def test_a_folder_made_with_a_narrow_mode_is_opened_up_by_its_owner(tmp_path):
    locks = tmp_path / "gpus"
    locks.mkdir(mode=0o700)
    assert claim_free_gpu(1, locks) == 0
    assert stat.S_IMODE(locks.stat().st_mode) == FOLDER_MODE


@pytest.mark.skipif(not (other_user() and as_user(1, 1)), reason="needs root and an interpreter other users can run")
def test_a_folder_another_user_closed_gives_the_fix(shared_tmp):
    """A folder of the old kind (another user's, 0755, no lock file yet): a message naming it and the fix."""
    locks = shared_tmp / "gpus"
    locks.mkdir(mode=0o755)
    owner = other_user()
    os.chown(locks, owner["user"], owner["group"])
    checker = python("import sys\nfrom pathlib import Path\nfrom interpflow.models.gpu_locks import claim_free_gpu\n"
                     "from interpflow.errors import ConfigError\n"
                     "try:\n    claim_free_gpu(1, Path(sys.argv[1]))\nexcept ConfigError as e:\n    print(e)\n",
                     str(locks), **as_user(1, 1))  # `daemon`: neither the folder's owner nor root
    out, _ = checker.communicate(timeout=60)
    assert f"cannot open the GPU lock file {locks}/gpu0.lock" in out
    assert f"chmod 1777 {locks}" in out and "INTERPFLOW_GPU_LOCKS" in out


def test_claim_without_a_free_gpu_is_none_in_process(tmp_path):
    assert claim_free_gpu(1, tmp_path / "gpus") == 0
    # flock locks belong to the open file: a second open in the same process is a second claimant
    assert claim_free_gpu(1, tmp_path / "gpus") is None
    with pytest.raises(ConfigError):
        claim_free_gpu(1, Path("/proc/interpflow-no-such-folder"))
