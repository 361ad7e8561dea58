#!/usr/bin/env bash
# SeqSeg Tables 3-5 (attention ablation, losses, networks) on a synthetic cohort: 30 patients with T1, T1c and T2,
# 5-fold CV, the same epochs for every row, 128 x 128 slices (configs/preprocessing-seqseg-128.yaml).
# The tables share one folder (OUT/tables: table3.md, table4.md, table5.md), so a row equal in two tables (the plain
# U-Net) trains once; two folds train at once (one thread each).
# Usage: benchmarks/seqseg_synthetic_compare.sh [OUT] [NUM_CASES] [TABLES...]   (about 2 hours on 2 CPU cores;
# resumable: rerun to continue; tables default to "5 3 4")
set -euo pipefail
out=${1:-runs/seqseg-synthetic}
cases=${2:-30}
shift $(( $# > 2 ? 2 : $# ))
tables=${*:-5 3 4}
npcseg=${NPCSEG:-.venv/bin/npcseg}
$npcseg synth "$out/cohort" --cases "$cases" --seed 7
$npcseg validate "$out/cohort" --required t1,t1c,t2
$npcseg register "$out/cohort" "$out/registrations" --workers 1
$npcseg preprocess "$out/cohort" "$out/cache" --preset seqseg --config configs/preprocessing-seqseg-128.yaml \
  --registrations "$out/registrations" --workers 1
for table in $tables; do
  $npcseg compare "configs/seqseg-table$table.yaml" --cohort "$out/cohort" --cache "$out/cache" \
    --out "$out/tables" --name "table$table" --parallel-folds 2 --no-progress
done
