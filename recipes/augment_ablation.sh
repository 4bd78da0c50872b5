#!/usr/bin/env bash
# Augmentation on vs off: the same short 'small' run twice, side by side (1 thread each), on
# train-clean-5 with the four validation speakers held out.
#   bash recipes/augment_ablation.sh DATA_DIR
set -euo pipefail
data=${1:?usage: augment_ablation.sh DATA_DIR}
source "$(dirname "$0")/common.sh"
need "$ls5" mini
common=(--preset small --train_data "$ls5" --val_data "" --val_speakers $val_speakers
        --max_steps 450 --warmup_steps 100 --eval_every 450 --save_every 100 --num_workers 0
        --threads 1 --beam_size 1 --wandb_mode disabled)
off=(--speed_prob 0 --gain_prob 0 --noise_prob 0 --reverb_prob 0 --bandlimit_prob 0 --freq_masks 0 --time_masks 0)
train_run runs/aug_on "${common[@]}" >> runs/aug_on.log 2>&1 &
train_run runs/aug_off "${common[@]}" "${off[@]}" >> runs/aug_off.log 2>&1
wait
grep -h "^step 450" runs/aug_on.log runs/aug_off.log
