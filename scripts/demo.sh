#!/usr/bin/env bash
# Set up, then run the whole workflow at toy scale on the CPU with the offline demo data set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
start=$(date +%s)
snakemake "$@" --profile profiles/local --workflow-profile none --configfile config/demo.yaml
# one browsable page of every table, figure and the Section 3 analysis, with captions
snakemake --profile profiles/local --workflow-profile none --configfile config/demo.yaml --report results/demo/report.html
echo "demo finished in $(( $(date +%s) - start )) s; open results/demo/README.md or results/demo/report.html"
