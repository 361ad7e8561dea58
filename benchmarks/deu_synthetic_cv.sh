#!/usr/bin/env bash
# The DEU "input experiment" (paper Table 1) on a synthetic cohort: 30 patients, 5-fold CV, T1 vs T2 vs T1+T2.
# Usage: benchmarks/deu_synthetic_cv.sh [OUT] [NUM_CASES]   (hours on 2 CPU cores; resumable: rerun to continue)
set -euo pipefail
out=${1:-runs/deu-synthetic-cv}
cases=${2:-30}
npcseg=${NPCSEG:-.venv/bin/npcseg}
$npcseg synth "$out/cohort" --cases "$cases" --seed 7
$npcseg validate "$out/cohort" --required t1,t2
$npcseg register "$out/cohort" "$out/registrations" --sequences t1 --workers 1
$npcseg preprocess "$out/cohort" "$out/cache" --config configs/preprocessing-deu-128.yaml \
  --registrations "$out/registrations" --workers 1
$npcseg experiment inputs --cohort "$out/cohort" --cache "$out/cache" --out "$out/experiment" \
  --config configs/deu-synthetic-cv.yaml --no-progress
