#!/usr/bin/env bash
# Set up, then run the whole workflow at toy scale on the CPU with the offline demo data set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
start=$(date +%s)
snakemake "$@" --profile profiles/local --workflow-profile none --configfile config/demo.yaml
echo "demo finished in $(( $(date +%s) - start )) s; open results/demo/README.md"
