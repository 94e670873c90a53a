#!/usr/bin/env bash
# Set up (idempotent), then lint and run the whole test suite (unit tests + the tiny end-to-end workflow).
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not e2e"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/snakemake --lint
exec .venv/bin/pytest "$@"
