#!/usr/bin/env bash
# SeqSeg instance level on the synthetic cohort of benchmarks/seqseg_synthetic_compare.sh (run that first, or at
# least its synth / register / preprocess steps): held-out patients = fold 0 of its splits.json.
#  1. the tumour-present classifier on the fold's training cases (its encoder is the detector's frozen backbone);
#  2. the exploration ablation (eps_priori 0.8 / 0.4 / plain eps-greedy) + the supervised box regressor + the
#     heat-map detector at four thresholds (the fold's whole-slice RANet + DBW run of Table 5) + the start-box and ground-truth
#     prior-policy references, scored on the held-out patients' tumour slices (recall and IoU min / max / mean,
#     recall of the 1.5x box), with the convergence figure;
#  3. SeqSeg Table 6: RANet + DBW on whole slices vs the detect-then-segment cascade (DQL detector) vs the same
#     cascade with the heat-map detector, 5-fold, in the tables' OUT.
# Usage: benchmarks/seqseg_detection.sh [OUT]   (resumable: rerun to continue)
set -euo pipefail
out=${1:-runs/seqseg-synthetic}
npcseg=${NPCSEG:-.venv/bin/npcseg}
python=${PYTHON:-.venv/bin/python}
splits="$out/tables/splits.json"
ids() { $python -c "import json, sys; fold = json.load(open('$splits'))[0]; print(','.join(fold[sys.argv[1]]))" "$1"; }
train=$(ids train)
test=$(ids val)
inner_train=$($python -c "print(','.join('$train'.split(',')[:-4]))")
inner_val=$($python -c "print(','.join('$train'.split(',')[-4:]))")
mkdir -p "$out/detection"
$python -c "import yaml; row = yaml.safe_load(open('configs/seqseg-table6.yaml'))['rows'][1]
print(yaml.safe_dump(row['cascade']['presence']))" > "$out/detection/presence.yaml"  # the Table 6 cascade's classifier
$npcseg detect presence --cache "$out/cache" --out "$out/detection/presence" --cases "$inner_train" \
  --val-cases "$inner_val" --config "$out/detection/presence.yaml" --no-progress
$npcseg detect ablation --cache "$out/cache" --out "$out/detection/ablation" --train "$train" --test "$test" \
  --config configs/detector-synthetic.yaml --backbone "$out/detection/presence" --figures 3 \
  --heatmap "$out/tables/ranet-dbw/fold_0" --heatmap-threshold 0.5 --heatmap-threshold 0.2 \
  --heatmap-threshold 0.1 --heatmap-threshold 0.05 --no-progress
$npcseg compare configs/seqseg-table6.yaml --cohort "$out/cohort" --cache "$out/cache" --out "$out/tables" \
  --name table6 --no-progress
