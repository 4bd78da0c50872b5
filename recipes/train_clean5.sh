#!/usr/bin/env bash
# The released model: QuartzNet 'small' on LibriSpeech train-clean-5 with four speakers held out
# for validation, then the 3-gram LM, alpha/beta tuned on those speakers, and the export.
#   bash recipes/train_clean5.sh DATA_DIR      (DATA_DIR: the folder built from the shared data)
# About 1 h 40 min on 2 CPU cores; on a GPU add --device cuda (the run is the same otherwise).
set -euo pipefail
data=${1:?usage: train_clean5.sh DATA_DIR}
ls5=$data/voice-age-mini-librispeech/LibriSpeech/train-clean-5
val_speakers="19 3664 1970 6848"
val_dirs=$(printf "$ls5/%s," $val_speakers); val_dirs=${val_dirs%,}
run=${RUN:-runs/small_tc5}

python train.py --preset small --train_data "$ls5" --val_data "" --val_speakers $val_speakers \
  --max_steps 3000 --eval_every 250 --save_every 100 --num_workers 1 --beam_size 1 --out_dir "$run"
python train.py plot "$run" --out docs/curves.png

VAL_SPEAKERS="$val_speakers" bash recipes/build_lm.sh "$data" lm/lm3.arpa.gz
python inference.py --data_dir "$val_dirs" --checkpoint "$run/best.pt" --tune --lm lm/lm3.arpa.gz --beam_size 50 \
  --alphas 0.2 0.4 0.6 0.8 1.0 --betas 0 1 2 3 4 --out "$run/tune"
# the best row, from the tuning's JSON:
read -r alpha beta < <(python -c "import json, sys; b = json.load(open(sys.argv[1]))['best']; print(b['alpha'], b['beta'])" "$run/tune/tune.json")
python train.py export "$run/best.pt" checkpoints/model.pt --decoder beam_lm --lm lm/lm3.arpa.gz \
  --alpha "$alpha" --beta "$beta"

for decoder in greedy beam beam_lm; do   # the README's validation table
  python inference.py --data_dir "$val_dirs" --out "preds/val_$decoder" --decoder "$decoder"
done
# reported, never tuned on: the four LibriSpeech test-clean utterances in the shared data
for decoder in greedy beam beam_lm; do
  python inference.py --data_dir "$data/kennethwang-speech2text/LibriSpeech/test-clean" \
    --out "preds/test4_$decoder" --decoder "$decoder"
done
