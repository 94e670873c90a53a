#!/usr/bin/env bash
# Set up (idempotent), then build every table and figure with the default config.
# Extra arguments go to Snakemake, e.g. `scripts/run.sh --configfile config/tiny.yaml`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/snakemake --cores all results/tables "$@"
