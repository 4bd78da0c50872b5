#!/usr/bin/env bash
# Phonemes against characters, one change, at equal training wall-clock time (--max_minutes, the
# schedule on the clock), same data, same validation. Both arms train on train-clean-5 (less the four
# validation speakers) plus Common Voice's training sentences and validate on those four speakers
# plus Common Voice's held-out sentences; they run two at a time, one thread each, so each has one
# core of a 2-core machine. Two designs:
#   scratch   QuartzNet small at stride 2 from random weights, characters vs phonemes;
#   release2  from release 2's weights (checkpoints/model.pt): continued character training vs its
#             encoder with a new phoneme output layer (--init_from ... --tokenizer phone), lr 2e-3;
#   aux       (not by default) characters with an auxiliary phoneme loss (--aux_phone_weight 0.3),
#             from scratch and from release 2's weights: a third arm for each design above.
# Then per arm: LM fusion tuned on the LibriSpeech speakers with the same grid and the book 3-gram
# (phonemes decode into the words of its lexicon, checkpoints/books3.lexicon.gz), export, and greedy,
# beam and beam+LM decoding of both validation sets, timed; phoneme arms also print the phoneme
# error rate of their best path. Every command and its output goes to RUNS_DIR/table.log.
#   bash recipes/phone_vs_char.sh DATA_DIR [RUNS_DIR [MINUTES [DESIGN ...]]]
#   (defaults: runs/phone_vs_char, 120 minutes, both designs: about 4.5 h on 2 CPU cores)
set -euo pipefail
data=${1:?usage: phone_vs_char.sh DATA_DIR [RUNS_DIR [MINUTES [scratch|release2|aux ...]]]}
runs=${2:-runs/phone_vs_char}
minutes=${3:-120}
designs=("${@:4}"); [ ${#designs[@]} -gt 0 ] || designs=(scratch release2)
source "$(dirname "$0")/common.sh"
need "$ls5" mini
lm=checkpoints/books3.arpa.gz
mkdir -p "$runs"
[ -d "$cv/train" ] || { need "$cv_dev" COMMON_VOICE_RELEASE; python recipes/split_by_text.py "$cv_dev" "$cv"; }
[ -f checkpoints/books3.lexicon.gz ] || python lm.py lexicon --lm "$lm" --out checkpoints/books3.lexicon.gz
common=(--preset small --train_data "$ls5,$cv/train" --val_data "$cv/val" --val_speakers $val_speakers
        --max_minutes "$minutes" --max_steps 100000 --eval_every 500 --save_every 100 --num_workers 1
        --beam_size 1 --threads 1)

arm() {  # arm NAME [FLAGS...]: one run in RUNS_DIR/NAME (resumed when it holds one), its log beside it
  train_run "$runs/$1" "${common[@]}" "${@:2}" >> "$runs/$1.log" 2>&1
}
log() {  # log COMMAND...: the command, its results and its time into the table's log
  local start=$SECONDS status=0
  echo "\$ $*" >> "$runs/table.log"
  "$@" > "$runs/command.log" 2>&1 || status=$?  # 3: done, with warnings (a file skipped)
  [ $status -eq 0 ] || [ $status -eq 3 ] || { cat "$runs/command.log" >&2; exit $status; }
  grep -E "^(WER|PER|warning|alpha \|)|best|^ *[0-9.]+ \|" "$runs/command.log" >> "$runs/table.log" || true
  echo "($((SECONDS - start)) s)" >> "$runs/table.log"
}

for design in "${designs[@]}"; do
  case $design in
    scratch)
      names=(char_scratch phone_scratch)
      arm char_scratch --tokenizer char & first=$!
      arm phone_scratch --tokenizer phone & second=$!
      wait $first; wait $second;;
    release2)
      names=(char_release2 phone_release2)
      arm char_release2 --init_from checkpoints/model.pt --lr 2e-3 & first=$!
      arm phone_release2 --init_from checkpoints/model.pt --tokenizer phone --lr 2e-3 & second=$!
      wait $first; wait $second;;
    aux)
      names=(char_aux_scratch char_aux_release2)
      arm char_aux_scratch --tokenizer char --aux_phone_weight 0.3 & first=$!
      arm char_aux_release2 --init_from checkpoints/model.pt --aux_phone_weight 0.3 --lr 2e-3 & second=$!
      wait $first; wait $second;;
    *) echo "unknown design $design: scratch, release2 or aux" >&2; exit 2;;
  esac
  python train.py plot "$runs/${names[0]}" "$runs/${names[1]}" --x minutes --out "docs/phone_vs_char_$design.png"

  # the table: fusion tuned per arm on the LibriSpeech speakers (same grid), then each decoder, timed
  for name in "${names[@]}"; do
    log python inference.py --checkpoint "$runs/$name/last.pt" --data_dir "$val_dirs" --tune --lm "$lm" \
      --unk_score lexicon --beam_size 50 --alphas 0.4 0.6 0.8 1.0 1.2 1.5 --betas 0 1 2 3 --unk_scores lexicon --out "$runs/$name/tune"
    python train.py export "$runs/$name/last.pt" "$runs/$name/export/model.pt" --decoder beam_lm --lm "$lm" \
      --tuned "$runs/$name/tune/tune.json"
    for decoder in greedy beam beam_lm; do
      log python inference.py --checkpoint "$runs/$name/export/model.pt" --data_dir "$val_dirs" \
        --out "$runs/$name/preds/ls_$decoder" --decoder "$decoder"
      log python inference.py --checkpoint "$runs/$name/export/model.pt" --data_dir "$cv/val" \
        --out "$runs/$name/preds/cv_$decoder" --decoder "$decoder"
    done
  done
done
echo "table: $runs/table.log; curves: docs/phone_vs_char_*.png"
