"""Keep freed memory inside the process, so that big CPU tensors do not page-fault on every step.

glibc serves large requests with a fresh ``mmap``, unmapped when freed, so every step faulted its 20-160 MB activations
in anew: 778,000 minor page faults in a full fine-tuning step, about 59,000 from a heap never trimmed, which stays at
the peak size that training reaches in its first step anyway. ``GSLORA_SYSTEM_MALLOC=1`` keeps glibc's defaults."""
import ctypes
import ctypes.util
import os
import sys

# mallopt parameters of glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2 ** 31 - 1


def keep_freed_memory() -> bool:
    """Serves every allocation from the heap (no mmap), never trimmed; returns whether it took effect (glibc only)."""
    if os.environ.get("GSLORA_SYSTEM_MALLOC") == "1" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _INT_MAX))
