#!/usr/bin/env bash
# The test suite on the CPU (about 10 minutes on 2 cores). Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
# Tiny test models run fastest on one thread; two threads per process also thrash when tests run in parallel.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
python -m pytest -q tests "$@"
