"""Keep a long batch-by-batch load from growing the C heap (glibc only; elsewhere nothing is changed).

glibc serves an allocation of 128 KiB or more with mmap and gives it back to the system when it is freed,
but after the first such block is freed it raises that threshold to the block's size (up to 32 MiB), so
from then on the megabyte-sized NumPy and pandas arrays of each batch come from the heap's arenas, and the
freed space stays resident and fragments. Over the ~11 batches of events of the 250k borough that is
~0.1 GB of freed heap the process keeps (docs/performance.md). Fixing the threshold with mallopt (the same
as MALLOC_MMAP_THRESHOLD_ in the environment, which must be set before the process starts) turns the
adjustment off: blocks of 1 MiB or more are mapped and unmapped, so the resident heap stays flat."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD_BYTES = 1 << 20


def map_large_blocks() -> bool:
    """Fix glibc's mmap threshold at 1 MiB for this process; True if set, False where the C library is not
    glibc (nothing is changed). Idempotent."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt, macOS has no libc.so)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def resident_bytes() -> int:
    """This process's resident memory now, in bytes (Linux /proc/self/statm); 0 where that is not available."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
