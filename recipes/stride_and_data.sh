#!/usr/bin/env bash
# One change at a time against the released recipe (characters, stride 2, train-clean-5), at equal
# training wall-clock time: the runs go side by side, one thread each, and each stops after
# MINUTES minutes (--max_minutes), its learning-rate schedule running on the clock.
#   char_s2      the released recipe
#   char_s4      stride 4 (40 ms per output frame): a step costs about half
#   char_s4_cv   stride 4, plus Common Voice's training sentences (recipes/split_by_text.py)
#   bash recipes/stride_and_data.sh DATA_DIR RUNS_DIR [MINUTES]
set -euo pipefail
data=${1:?usage: stride_and_data.sh DATA_DIR RUNS_DIR [MINUTES]}
runs=${2:?usage: stride_and_data.sh DATA_DIR RUNS_DIR [MINUTES]}
minutes=${3:-80}
source "$(dirname "$0")/common.sh"
need "$ls5" mini
need "$cv/train" COMMON_VOICE_RELEASE
common=(--preset small --val_data "" --val_speakers $val_speakers --save_every 100 --num_workers 1
        --beam_size 1 --threads 1 --wandb_mode disabled --max_minutes "$minutes")
mkdir -p "$runs"
train_run "$runs/char_s2" "${common[@]}" --train_data "$ls5" --max_steps 100000 --eval_every 150 \
  >> "$runs/char_s2.log" 2>&1 &
train_run "$runs/char_s4" "${common[@]}" --train_data "$ls5" --stride 4 --max_steps 100000 --eval_every 300 \
  >> "$runs/char_s4.log" 2>&1 &
train_run "$runs/char_s4_cv" "${common[@]}" --train_data "$ls5,$cv/train" --stride 4 --max_steps 100000 \
  --eval_every 300 >> "$runs/char_s4_cv.log" 2>&1 &
wait
python train.py plot "$runs/char_s2" "$runs/char_s4" "$runs/char_s4_cv" --x minutes --out docs/stride_and_data.png
