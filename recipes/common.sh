# Sourced by every recipe after setting data=DATA_DIR: where recipes/get_data.sh puts the data, and
# the held-out validation sets every release and experiment is measured on.
ls5=$data/LibriSpeech/train-clean-5  # mini LibriSpeech's training set (get_data.sh DATA_DIR mini)
cv_dev=$data/cv-dev                  # Common Voice's dev set in the custom layout (get_data.sh DATA_DIR CV_RELEASE)
cv=$data/cv                          # the same split by sentence (recipes/split_by_text.py): cv/train, cv/val
test_clean=$data/LibriSpeech/test-clean  # reported only, never used for a choice (get_data.sh DATA_DIR test-clean)
val_speakers="19 3664 1970 6848"     # whole speakers of train-clean-5 held out for validation: 156 clips, 35 min
val_dirs=$(printf "$ls5/%s," $val_speakers)
val_dirs=${val_dirs%,}

need() {  # need PATH WHAT: stop in one line when PATH is missing, naming what get_data.sh fetches for it
  [ -e "$1" ] || { echo "error: $1 not found; get it with: bash recipes/get_data.sh $data $2" >&2; exit 1; }
}

train_run() {  # train_run OUT_DIR FLAGS...: a new run into OUT_DIR, or the run it holds resumed
  if [ -f "$1/last.pt" ]; then  # a finished run returns at once
    python train.py --resume --out_dir "$1"
  else
    rm -f "$1/metrics.jsonl" "$1/examples.jsonl"  # stopped before its first checkpoint: nothing to resume
    python train.py "${@:2}" --out_dir "$1"
  fi
}
