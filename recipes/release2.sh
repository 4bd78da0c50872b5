#!/usr/bin/env bash
# Release 2: the first release's model (QuartzNet small, characters, stride 2) trained on in six
# stages, each a new optimiser and cosine schedule on the clock: MINUTES1 at lr 0.01, then MINUTES2
# at lr 3e-3 from the first stage's weights, on train-clean-5 plus Common Voice's training
# sentences; then MINUTES3 at lr 3e-3 from the second stage's, with train-clean-5 listed twice
# (each epoch holds its audio twice: two thirds LibriSpeech); then MINUTES4 at lr 2e-3 from the
# third's, and MINUTES5 at lr 2e-3 from the fourth's, on the same weighted mix; then MINUTES6 at
# lr 2e-3 from the fifth's widened to 1.9 M parameters (about 1.4x the channels, each new one a copy
# of an old one). Validated on the four held-out LibriSpeech speakers and Common Voice's held-out
# sentences; then fusion tuned on the LibriSpeech speakers, export and the README tables.
#   bash recipes/release2.sh DATA_DIR [MINUTES1 ... [MINUTES6]]   (repository root; 11 h on 2 CPU cores)
# On faster hardware the same minutes make more steps: to repeat the runs' steps instead,
#   MAX_STEPS1=4265 MAX_STEPS2=4430 MAX_STEPS3=4001 MAX_STEPS4=3893 MAX_STEPS5=3623 MAX_STEPS6=2999 \
#   bash recipes/release2.sh DATA_DIR 0 0 0 0 0 0   (0: no time limit)
set -euo pipefail
data=${1:?usage: release2.sh DATA_DIR [MINUTES1 [MINUTES2 [MINUTES3 [MINUTES4 [MINUTES5 [MINUTES6]]]]]]}
minutes1=${2:-125}
minutes2=${3:-120}
minutes3=${4:-110}
minutes4=${5:-105}
minutes5=${6:-80}
minutes6=${7:-100}
ls5=$data/voice-age-mini-librispeech/LibriSpeech/train-clean-5
val_speakers="19 3664 1970 6848"
val_dirs=$(printf "$ls5/%s," $val_speakers); val_dirs=${val_dirs%,}
run=${RUN:-runs/release2}
mkdir -p "$run"
[ -d "$data/cv/train" ] || python recipes/split_by_text.py "$data/commonvoice1-valid-dev" "$data/cv"
[ -f "$run/release1.pt" ] || git show b1d2d84:checkpoints/model.pt > "$run/release1.pt"  # the first release

train() {  # train FROM LR MINUTES MAX_STEPS OUT_DIR TRAIN_DATA [FLAGS...]
  python train.py --preset small --init_from "$1" --lr "$2" --max_minutes "$3" --max_steps "$4" \
    --train_data "$6" --val_data "$data/cv/val" --val_speakers $val_speakers \
    --eval_every 500 --save_every 100 --num_workers 1 --beam_size 1 --out_dir "$5" "${@:7}"
}
train "$run/release1.pt" 0.01 "$minutes1" "${MAX_STEPS1:-100000}" "$run/stage1" "$ls5,$data/cv/train"
train "$run/stage1/last.pt" 3e-3 "$minutes2" "${MAX_STEPS2:-100000}" "$run/stage2" "$ls5,$data/cv/train"
train "$run/stage2/last.pt" 3e-3 "$minutes3" "${MAX_STEPS3:-100000}" "$run/stage3" "$ls5,$ls5,$data/cv/train"
train "$run/stage3/last.pt" 2e-3 "$minutes4" "${MAX_STEPS4:-100000}" "$run/stage4" "$ls5,$ls5,$data/cv/train"
train "$run/stage4/last.pt" 2e-3 "$minutes5" "${MAX_STEPS5:-100000}" "$run/stage5" "$ls5,$ls5,$data/cv/train"
train "$run/stage5/last.pt" 2e-3 "$minutes6" "${MAX_STEPS6:-100000}" "$run/stage6" "$ls5,$ls5,$data/cv/train" \
  --c1_channels 176 --block_channels 176 224 256 304 352 --c2_channels 448 --c3_channels 640
python train.py plot "$run"/stage{1,2,3,4,5,6} --x minutes --out docs/release2_curves.png

python inference.py --checkpoint "$run/stage6/last.pt" --data_dir "$val_dirs" --tune --lm checkpoints/books3.arpa.gz \
  --beam_size 50 --alphas 0.6 0.8 1.0 1.2 --betas 0 1 2 --unk_scores lexicon --out "$run/tune"
python train.py export "$run/stage6/last.pt" checkpoints/model.pt --decoder beam_lm --lm checkpoints/books3.arpa.gz \
  --tuned "$run/tune/tune.json"

for decoder in greedy beam beam_lm; do  # the README's table: both validation sets, then 4 test-clean utterances
  python inference.py --data_dir "$val_dirs" --out "$run/preds/ls_$decoder" --decoder "$decoder"
  python inference.py --data_dir "$data/cv/val" --out "$run/preds/cv_$decoder" --decoder "$decoder"
  python inference.py --data_dir "$data/kennethwang-speech2text/LibriSpeech/test-clean" \
    --out "$run/preds/test4_$decoder" --decoder "$decoder"
done
