#!/usr/bin/env bash
# The shipped model from scratch: the stages of recipes/release_stages.tsv one after the other, then
# fusion tuned on the held-out LibriSpeech speakers, the export and the README's results table.
#   bash recipes/release.sh DATA_DIR [--dry-run] [--by-steps]     (from the repository root)
# DATA_DIR as recipes/get_data.sh makes it: mini LibriSpeech and a converted Common Voice release.
# Budget: 95 minutes for release 1, 640 for release 2's six stages, 707 for release 3's seven (about 24 h
# on 2 CPU cores).
# --dry-run prints the command lines instead of running them. --by-steps repeats each stage's steps
# instead of its minutes (on a GPU the same minutes make many more steps). A stage stopped on the way
# resumes where it stopped when the recipe is run again; a finished one returns at once.
set -euo pipefail
data="" dry_run="" by_steps=""
for arg in "$@"; do
  case $arg in
    --dry-run) dry_run=1 ;;
    --by-steps) by_steps=1 ;;
    -*) echo "error: unknown flag $arg; usage: release.sh DATA_DIR [--dry-run] [--by-steps]" >&2; exit 2 ;;
    *) data=$arg ;;
  esac
done
[ -n "$data" ] || { echo "usage: release.sh DATA_DIR [--dry-run] [--by-steps]" >&2; exit 2; }
source "$(dirname "$0")/common.sh"
need "$ls5" mini
need "$cv/train" COMMON_VOICE_RELEASE
run=${RUN:-runs/release}
lm=checkpoints/books3.arpa.gz

step() {  # one command line: run it, or print it with --dry-run (quoted only where a shell needs it)
  [ -z "$dry_run" ] && { "$@"; return; }
  local out=() arg
  for arg in "$@"; do
    if [[ $arg =~ ^[][A-Za-z0-9_./,:=+{}-]+$ ]]; then out+=("$arg"); else out+=("$(printf %q "$arg")"); fi
  done
  echo "${out[*]}"
}

last="" stages=()  # the stages' run folders, for the curves (release 1's run is a different preset)
while IFS=$'\t' read -r stage from lr minutes max_steps made train_data val_data eval_every flags; do
  [[ -z $stage || $stage == \#* ]] && continue
  train_data=${train_data//LS5/$ls5} train_data=${train_data//CV/$cv}
  val_data=${val_data//CV/$cv}
  [ "$val_data" = '""' ] && val_data=""
  if [ -n "$by_steps" ]; then minutes=- max_steps=$made; fi
  if [ "$from" != - ] && [[ $from != */* ]] && [ ! -f "$run/$from" ]; then  # a release, exported as shipped
    step python train.py export "$run/${from%.pt}/best.pt" "$run/$from"
  fi
  if [ -f "$run/$stage/last.pt" ]; then
    step python train.py --resume --out_dir "$run/$stage"
  else
    [ -e "$run/$stage/metrics.jsonl" ] && step rm -f "$run/$stage/metrics.jsonl" "$run/$stage/examples.jsonl"  # stopped before its first checkpoint
    cmd=(python train.py --preset small)
    [ "$from" = - ] || cmd+=(--init_from "$run/$from")
    [ "$lr" = - ] || cmd+=(--lr "$lr")
    [ "$minutes" = - ] || cmd+=(--max_minutes "$minutes")
    cmd+=(--max_steps "$max_steps" --train_data "$train_data" --val_data "$val_data" --val_speakers $val_speakers
          --eval_every "$eval_every" --save_every 100 --num_workers 1 --beam_size 1 --out_dir "$run/$stage")
    [ "$flags" = - ] || cmd+=($flags)
    step "${cmd[@]}"
  fi
  last=$stage
  [[ $stage == stage* ]] && stages+=("$run/$stage")
done < "$(dirname "$0")/release_stages.tsv"
step python train.py plot "${stages[@]}" --x minutes --out "$run/release_curves.png"

# fusion with the shipped book 3-gram, tuned on the LibriSpeech speakers only at the search it ships
# with (beam 1000, margin 15: docs/decoding.md); the model beside its LM
search=(--beam_size 1000 --beam_margin 15)
step python inference.py --checkpoint "$run/$last/last.pt" --data_dir "$val_dirs" --tune --lm "$lm" \
  "${search[@]}" --alphas 0.6 0.8 1.0 --betas 0 0.5 1 --unk_scores lexicon --out "$run/tune"
step python train.py export "$run/$last/last.pt" "$run/model.pt" --decoder beam_lm --lm "$lm" \
  "${search[@]}" --tuned "$run/tune/tune.json"

sets=(ls "$val_dirs" cv "$cv/val")
[ -d "$test_clean" ] && sets+=(test_clean "$test_clean")  # reported only
for decoder in greedy beam beam_lm; do  # the README's table
  for ((i = 0; i < ${#sets[@]}; i += 2)); do
    step python inference.py --checkpoint "$run/model.pt" --data_dir "${sets[i + 1]}" \
      --out "$run/preds/${sets[i]}_$decoder" --decoder "$decoder"
  done
done
