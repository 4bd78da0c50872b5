#!/usr/bin/env bash
# Common Voice or not, at release 2's length: one change against release 2's stage 1, at equal
# training wall-clock time on the whole machine. Both runs continue the first release for MINUTES
# at lr 0.01 (recipes/release.sh's stage1), validated on the four held-out LibriSpeech speakers and Common
# Voice's held-out sentences; then each is tuned on the LibriSpeech speakers and decoded on both sets.
#   ls_cv     train-clean-5 + Common Voice's training sentences (release 2's stage 1)
#   ls_only   train-clean-5 alone
#   bash recipes/cv_ablation.sh DATA_DIR RUNS_DIR [MINUTES]   (two runs one after the other: 4.5 h on 2 CPU cores)
# A run already in RUNS_DIR is resumed, so release.sh's stage1 copied to RUNS_DIR/ls_cv is not trained again.
set -euo pipefail
data=${1:?usage: cv_ablation.sh DATA_DIR RUNS_DIR [MINUTES]}
runs=${2:?usage: cv_ablation.sh DATA_DIR RUNS_DIR [MINUTES]}
minutes=${3:-125}
source "$(dirname "$0")/common.sh"
need "$ls5" mini
need "$cv/train" COMMON_VOICE_RELEASE
release1=${RELEASE1:-runs/release/release1.pt}  # the first release: recipes/release.sh's first stage, exported
[ -f "$release1" ] || { echo "error: $release1 not found; make it with recipes/release.sh's first stage" >&2; exit 1; }
mkdir -p "$runs"

for arm in ls_cv ls_only; do
  train_data=$ls5; [ "$arm" = ls_cv ] && train_data="$ls5,$cv/train"
  train_run "$runs/$arm" --preset small --init_from "$release1" --lr 0.01 --max_minutes "$minutes" \
    --max_steps 100000 --train_data "$train_data" --val_data "$cv/val" --val_speakers $val_speakers \
    --eval_every 500 --save_every 100 --num_workers 1 --beam_size 1
  python inference.py --checkpoint "$runs/$arm/last.pt" --data_dir "$val_dirs" --tune --lm checkpoints/books3.arpa.gz \
    --beam_size 50 --alphas 0.6 0.8 1.0 1.2 --betas 0 1 2 --unk_scores lexicon --out "$runs/$arm/tune"
  python train.py export "$runs/$arm/last.pt" "$runs/$arm/export/model.pt" --decoder beam_lm \
    --lm checkpoints/books3.arpa.gz --tuned "$runs/$arm/tune/tune.json"
  for decoder in greedy beam_lm; do
    python inference.py --checkpoint "$runs/$arm/export/model.pt" --data_dir "$val_dirs" \
      --out "$runs/$arm/preds/ls_$decoder" --decoder "$decoder"
    python inference.py --checkpoint "$runs/$arm/export/model.pt" --data_dir "$cv/val" \
      --out "$runs/$arm/preds/cv_$decoder" --decoder "$decoder"
  done
done
python train.py plot "$runs/ls_cv" "$runs/ls_only" --x minutes --out docs/cv_ablation.png
