#!/usr/bin/env bash
# The whole test suite: unit tests, linters, and end-to-end tests on real sandbox hosts.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/unit`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
# The whole suite on two workers (pytest-xdist): the end-to-end modules that boot hosts of their own (a
# cluster, interrupted provisioning, Vagrant) beside the ones sharing the session's provisioned hosts, each
# group in order on one worker (tests/conftest.py); the unit tests and linters fill the gaps.
if [ "$#" -eq 0 ]; then
  set -- -n 2 --dist loadgroup
fi
exec .venv/bin/pytest "$@"
