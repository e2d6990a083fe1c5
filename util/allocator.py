"""Keep freed memory inside the process, so that big CPU tensors do not page-fault on every step.

glibc's malloc serves every request above 32 MB (and, by its dynamic threshold, many smaller ones) with a fresh
``mmap`` and gives it back with ``munmap`` when the tensor is freed. A training step of the papers' Face
Transformer at 112 px allocates and frees activations of 20-160 MB dozens of times, so each step touched every
page of them anew: 778,000 minor page faults (3 GB of zero-filled pages) in one full fine-tuning step, measured
with ``getrusage``. Serving them from the heap and never trimming it brings that to about 59,000; the memory a step
frees is reused by the next step instead of being returned to the kernel and faulted back in.

The cost: the process keeps the heap at its peak size (it never shrinks back), which a training process reaches
anyway in its first step. ``GSLORA_SYSTEM_MALLOC=1`` leaves glibc's defaults alone; other C libraries (macOS,
musl) are left alone too.
"""
import ctypes
import ctypes.util
import os
import sys

# mallopt parameters of glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2 ** 31 - 1


def keep_freed_memory() -> bool:
    """Serves every allocation from the heap (no mmap) and never trims it; returns whether it took effect."""
    if os.environ.get("GSLORA_SYSTEM_MALLOC") == "1" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _INT_MAX))
