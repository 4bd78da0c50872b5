#!/usr/bin/env bash
# Word 3-gram LM for beam_lm decoding, from public-domain text that is not LibriSpeech audio text:
# King James Bible, Brown corpus, NLTK abc/inaugural/state_union/webtext, LJSpeech prompts, and the
# transcripts of the training speakers of train-clean-5 (never the validation speakers, never dev/test).
#   bash recipes/build_lm.sh DATA_DIR [OUT]      (DATA_DIR/text: the corpora above, gathered by hand)
set -euo pipefail
data=${1:?usage: build_lm.sh DATA_DIR [OUT]}
out=${2:-lm/lm3.arpa.gz}
source "$(dirname "$0")/common.sh"
corpus=$(mktemp)
trap 'rm -f "$corpus"' EXIT
{
  sed 's/^[^ ]* //' "$data/text/kjv_bible.txt"                    # drop the verse tags
  cat "$data/text/brown_plain.txt"
  cut -d'|' -f2 "$data/text/ljspeech_metadata_normalized.txt"
  for d in abc inaugural state_union webtext; do cat "$data/text/nltk/$d"/*.txt; done
  skip=$(printf '%s|' $val_speakers); skip=${skip%|}
  find "$ls5" -name '*.trans.txt' \
    | grep -Ev "/($skip)/" | xargs cat | cut -d' ' -f2-
} > "$corpus"
mkdir -p "$(dirname "$out")"
echo "corpus: $(wc -w < "$corpus") words"
python lm.py build --text "$corpus" --order 3 --prune 2 --out "$out"
ls -la "$out"
