"""The allocator setting every `interpflow` stage makes at start."""

import platform

import pytest

from interpflow.allocator import reuse_freed_memory


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_accepts_the_thresholds():
    assert reuse_freed_memory() is True
