#!/usr/bin/env bash
# The main job on the embedded default: install what is missing, boot a sandbox server, provision it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/provisioner demo "$@"
