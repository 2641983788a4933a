#!/usr/bin/env bash
# The README's main command: set up the venv, then run the quick CPU benchmark
# (GRPO vs GRPO + AEM, both with DAPO's dynamic sampling, on a one-room Household, 2 seeds;
# tokenizer, tiny model, LM pretraining and SFT built from scratch; about 20 minutes on 2 CPU
# cores) and print where the report is.
#
# Idempotent and resumable: setup.sh skips an up-to-date venv; the bench skips finished cells
# and cached set-up, so rerunning after an interruption continues where it stopped.
# Extra arguments go to `aem-train bench`, e.g. `bash scripts/quick.sh --out runs/bench/q2`
# or `bash scripts/quick.sh --set train.iterations=3`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh

OUT="runs/bench/quick"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
        --out) OUT="${args[$((i + 1))]:-$OUT}" ;;
        --out=*) OUT="${args[$i]#--out=}" ;;
    esac
done

start=$(date +%s)
status=0
.venv/bin/aem-train bench --preset quick --out "$OUT" "$@" || status=$?
echo "quick.sh: finished in $(( $(date +%s) - start )) s (exit status $status)"
if [ -f "$OUT/report.md" ]; then
    echo "quick.sh: report: $OUT/report.md (figures next to it; regenerate with: .venv/bin/aem-train report $OUT)"
fi
exit "$status"
