"""Keep freed memory in the process for the next tensor of the same size.

glibc hands an allocation above its mmap threshold (128 KiB at first, growing as such blocks are
freed) fresh pages from the kernel and returns them on free, so every forward pass page-faults its
activations in again: on 2 cores a forward pass to block 15 of SmolLM2-135M ran 20% slower for it
(benchmarks/activation_caching.py). Raising the thresholds keeps those pages in the heap. Elsewhere
than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # free memory at the top of the heap beyond this goes back to the kernel
M_MMAP_THRESHOLD = -3  # allocations at least this large get their own pages

MMAP_THRESHOLD_BYTES = 256 << 20
TRIM_THRESHOLD_BYTES = 1 << 30


def reuse_freed_memory() -> bool:
    """Raise glibc's thresholds for this process; True where it took effect."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False
