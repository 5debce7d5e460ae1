#!/usr/bin/env bash
# The whole test suite: unit tests, linters, and end-to-end tests on real sandbox hosts.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/unit`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
# The whole suite on two workers (pytest-xdist): the end-to-end modules that share the session's
# provisioned hosts on one, the unit tests and linters and then the modules that boot hosts of their own (a
# cluster, interrupted provisioning, Vagrant) on the other (tests/conftest.py).
if [ "$#" -eq 0 ]; then
  set -- -n 2
fi
exec .venv/bin/pytest "$@"
