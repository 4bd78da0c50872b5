#!/usr/bin/env bash
# Word pieces at stride 4 against the released recipe (characters, stride 2), at equal training
# wall-clock time (--max_minutes, the schedule on the clock): the runs go two at a time, one thread
# each, so each has one core of a 2-core machine; characters first, then each vocabulary size;
# then each run exported and decoded greedy, beam and beam+LM on the held-out speakers, timed.
#   bash recipes/bpe_vs_char.sh DATA_DIR RUNS_DIR [MINUTES [VOCAB_SIZE ...]]   (default: 30 128 256 512)
set -euo pipefail
data=${1:?usage: bpe_vs_char.sh DATA_DIR RUNS_DIR [MINUTES [VOCAB_SIZE ...]]}
runs=${2:?usage: bpe_vs_char.sh DATA_DIR RUNS_DIR [MINUTES [VOCAB_SIZE ...]]}
minutes=${3:-30}
vocabs=("${@:4}"); [ ${#vocabs[@]} -gt 0 ] || vocabs=(128 256 512)
source "$(dirname "$0")/common.sh"
need "$ls5" mini
common=(--preset small --train_data "$ls5" --val_data "" --val_speakers $val_speakers --save_every 100
        --num_workers 1 --beam_size 1 --threads 1 --wandb_mode disabled --max_minutes "$minutes" --max_steps 100000)
mkdir -p "$runs"

name() {  # name char|VOCAB_SIZE: the run's folder under RUNS_DIR
  if [ "$1" = char ]; then echo "char_s2_${minutes}m"; else echo "bpe$1_s4_${minutes}m"; fi
}
arm() {  # arm char|VOCAB_SIZE: one run, its log beside its folder
  local flags=(--stride 4 --tokenizer bpe --vocab_size "$1" --eval_every 400)
  [ "$1" != char ] || flags=(--eval_every 200)
  train_run "$runs/$(name "$1")" "${common[@]}" "${flags[@]}" >> "$runs/$(name "$1").log" 2>&1
}
arms=(char "${vocabs[@]}")
for ((i = 0; i < ${#arms[@]}; i += 2)); do
  arm "${arms[i]}" &
  if [ -n "${arms[i + 1]:-}" ]; then arm "${arms[i + 1]}" & fi
  wait
done
names=(); for a in "${arms[@]}"; do names+=("$(name "$a")"); done
python train.py plot $(printf "$runs/%s " "${names[@]}") --x minutes --out docs/bpe_vs_char.png

# The README's table: each run's last weights with the book 3-gram at fixed settings, three decoders
for name in "${names[@]}"; do
  python train.py export "$runs/$name/last.pt" "$runs/$name/export/model.pt" --decoder beam_lm \
    --lm checkpoints/books3.arpa.gz --alpha 0.8 --beta 0 --unk_score=-inf
  for decoder in greedy beam beam_lm; do
    echo "$name, $decoder:"
    time python inference.py --checkpoint "$runs/$name/export/model.pt" --data_dir "$val_dirs" \
      --out "$runs/$name/preds/$decoder" --decoder "$decoder"
  done
done
