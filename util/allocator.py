"""Keep freed memory inside the process, so that big CPU tensors do not page-fault on every step.

glibc serves large requests (above 32 MB, and many smaller ones) with a fresh ``mmap`` and ``munmap``s them when freed,
so every Face Transformer step faulted its 20-160 MB activations in anew: 778,000 minor page faults in one full
fine-tuning step (``getrusage``), about 59,000 when served from a heap that is never trimmed. The cost: the heap stays
at its peak size, which training reaches in its first step anyway. ``GSLORA_SYSTEM_MALLOC=1`` keeps glibc's defaults;
other C libraries are left alone."""
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
