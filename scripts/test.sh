#!/usr/bin/env bash
# The whole test suite: unit tests, linters, and end-to-end tests on real sandbox hosts.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/unit`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
exec .venv/bin/pytest "$@"
