#!/usr/bin/env bash
# Get what the recipes read into DATA_DIR, from its public homes (md5-checked), or convert it.
#   bash recipes/get_data.sh DATA_DIR [WHAT ...]      (default: mini; from the repository root)
# WHAT is one of
#   mini                 train-clean-5 + dev-clean-2 (OpenSLR 31, 450 MB): DATA_DIR/LibriSpeech/<split>
#   lm                   LibriSpeech's pruned 3-grams and vocabulary (OpenSLR 11, 48 MB): DATA_DIR/lm/
#   NAME                 any other name `python data.py download --help` lists: LibriSpeech's splits
#                        (train-clean-100, test-clean, ...), 4-gram (1.3 GB), librispeech-lm-norm (LM text)
#   PATH                 a Common Voice English release (its .tar.gz from commonvoice.mozilla.org, where
#                        its terms are accepted, or the folder it unpacks to): its dev set goes to
#                        DATA_DIR/cv-dev, then is split by sentence into DATA_DIR/cv/train and cv/val
set -euo pipefail
data=${1:?usage: get_data.sh DATA_DIR [mini|lm|NAME|COMMON_VOICE_RELEASE ...]}
source "$(dirname "$0")/common.sh"
names=()
for what in "${@:2}"; do
  if [ -e "$what" ]; then
    python data.py common_voice "$what" "$cv_dev"
    python recipes/split_by_text.py "$cv_dev" "$cv"
  else
    names+=("$what")
  fi
done
if [ $# -eq 1 ] || [ ${#names[@]} -gt 0 ]; then
  python data.py download "$data" ${names[@]+"${names[@]}"}
fi
