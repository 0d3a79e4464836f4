#!/usr/bin/env bash
# Run several bench/semisupervised_shift.py variants at once on one machine (one GPU is mostly
# idle under one training process), then pool them with --merge.
#
#   bench/parallel_shift.sh OUT_DIR SPEC_FILE [common bench args ...]
#
# SPEC_FILE: one variant per line, "NAME|bench args" (e.g. "sup|--conditions supervised").
# NAME is the --label unless the args give one. Each variant writes OUT_DIR/NAME.json and .log; OUT_DIR/merged.json pools them.
set -u
out=$1; spec=$2; shift 2
mkdir -p "$out"
pids=()
while IFS='|' read -r label args; do
  [[ -z "$label" || "$label" == \#* ]] && continue
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=2 python3 bench/semisupervised_shift.py "$@" --label "$label" $args \
    --out "$out/$label.json" > "$out/$label.log" 2>&1 &
  pids+=($!)
done < "$spec"
for p in "${pids[@]}"; do wait "$p"; done
python3 bench/semisupervised_shift.py --merge $(ls "$out"/*.json | grep -v /merged.json) --out "$out/merged.json" > "$out/table.md" 2>&1
cat "$out/table.md"
