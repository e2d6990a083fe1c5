#!/usr/bin/env bash
# The test suite on the CPU (a few minutes on 2 cores). Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
python -m pytest -q tests "$@"
