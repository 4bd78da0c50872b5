#!/usr/bin/env bash
# One change at a time against release 1 (the first stage of recipes/release.sh): the same 'small' recipe
# and validation speakers, run side by side with one thread each on the 2-core machine.
#   extra: + every other real speaker in the shared data (AN4 train, LJSpeech, the dc_tts reader,
#          pocketsphinx's LibriVox sentences): 1131 utterances, 1.07 h, same 3000 steps
#   wide:  channels x1.4 (1.91 M parameters instead of 1.05 M), 2200 steps so that it takes about
#          as long as the others (a step costs ~1.4x: bench/train_speed.py)
#   bash recipes/experiments.sh DATA_DIR
set -euo pipefail
data=${1:?usage: experiments.sh DATA_DIR}
source "$(dirname "$0")/common.sh"
need "$ls5" mini
extra=$ls5,$data/an4/train,$data/ljspeech-coqui-tts-tests,$data/dc_tts-selfrecorded-ljprompts,$data/pocketsphinx-testdata
common=(--preset small --val_data "" --val_speakers $val_speakers --eval_every 500 --save_every 100
        --num_workers 1 --beam_size 1 --threads 1 --wandb_mode disabled)
mkdir -p runs
train_run runs/exp_extra "${common[@]}" --train_data "$extra" --max_steps 3000 >> runs/exp_extra.log 2>&1 &
train_run runs/exp_wide "${common[@]}" --train_data "$ls5" --max_steps 2200 \
  --c1_channels 176 --block_channels 176 224 256 304 352 --c2_channels 448 --c3_channels 640 \
  >> runs/exp_wide.log 2>&1
wait
python train.py plot runs/release/release1 runs/exp_extra runs/exp_wide --out docs/experiments.png
