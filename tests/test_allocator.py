"""The allocator setting: freed big tensors' pages are reused, not faulted in again (Linux with glibc)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Eight rounds of allocating, filling and freeing tensors of 64, 12 and 20 MB (a training step's pattern in small):
# prints whether the setting took effect, then the minor page faults of each round.
PROBE = """
import resource, torch
from util.allocator import keep_freed_memory
print(keep_freed_memory())
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    big, mid = torch.ones(16 * 2 ** 20), torch.ones(3 * 2 ** 20)
    del big
    small = torch.ones(5 * 2 ** 20)
    del mid, small
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES = 64 * 2 ** 20 // 4096  # the 64 MB tensor's 16,384 pages of 4 KB


def faults_per_round(system_malloc: bool):
    env = {**os.environ, "GSLORA_SYSTEM_MALLOC": "1" if system_malloc else "0", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] == "True", [int(n) for n in out[1:]]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt exists on Linux only")
def test_a_freed_big_tensor_is_reused_without_page_faults():
    """After a few rounds the heap holds room for the whole pattern and a round faults almost nothing. (The least
    of the last rounds: on a loaded machine the kernel may reclaim a kept page now and then, which glibc's default,
    faulting every page every round, never escapes.)"""
    applied, faults = faults_per_round(system_malloc=False)
    if not applied:
        pytest.skip("not glibc: the C library's own allocator is left alone")
    assert min(faults[-4:]) < PAGES // 10


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt exists on Linux only")
def test_the_default_allocator_faults_the_pages_in_again():
    """The problem the setting fixes, on the same probe: without it, every round faults in its pages anew."""
    applied, faults = faults_per_round(system_malloc=True)
    assert not applied and min(faults[-3:]) > PAGES // 2
