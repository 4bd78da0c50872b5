#!/usr/bin/env bash
# Word pieces at stride 4 against the released recipe (characters, stride 2), side by side at
# equal training wall-clock time (one thread each, --max_minutes, the schedule on the clock).
#   bash recipes/bpe_vs_char.sh DATA_DIR RUNS_DIR [MINUTES] [VOCAB_SIZE]
set -euo pipefail
data=${1:?usage: bpe_vs_char.sh DATA_DIR RUNS_DIR [MINUTES] [VOCAB_SIZE]}
runs=${2:?usage: bpe_vs_char.sh DATA_DIR RUNS_DIR [MINUTES] [VOCAB_SIZE]}
minutes=${3:-30}
vocab=${4:-256}
ls5=$data/voice-age-mini-librispeech/LibriSpeech/train-clean-5
common=(--preset small --train_data "$ls5" --val_data "" --val_speakers 19 3664 1970 6848 --save_every 100
        --num_workers 1 --beam_size 1 --threads 1 --wandb_mode disabled --max_minutes "$minutes" --max_steps 100000)
mkdir -p "$runs"
python train.py "${common[@]}" --eval_every 200 --out_dir "$runs/char_s2_${minutes}m" \
  > "$runs/char_s2_${minutes}m.log" 2>&1 &
python train.py "${common[@]}" --stride 4 --tokenizer bpe --vocab_size "$vocab" --eval_every 400 \
  --out_dir "$runs/bpe${vocab}_s4_${minutes}m" > "$runs/bpe${vocab}_s4_${minutes}m.log" 2>&1 &
wait
python train.py plot "$runs/char_s2_${minutes}m" "$runs/bpe${vocab}_s4_${minutes}m" --x minutes --out docs/bpe_vs_char.png
