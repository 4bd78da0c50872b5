#!/usr/bin/env bash
# Regenerate the sample clips with the flite synthesizer (apt-get install flite).
# The sentences are written for this project; the audio is synthetic, so it may be shipped freely.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p audio transcriptions
say() {  # id voice format text
  flite -voice "$2" -t "$4" -o "/tmp/$1.wav"
  python -c "import soundfile as sf, sys; a, r = sf.read(sys.argv[1]); sf.write(sys.argv[2], a, r)" \
    "/tmp/$1.wav" "audio/$1.$3"
  echo "$4" > "transcriptions/$1.txt"
}
say sample1 slt wav "she opened the window and looked out over the quiet garden"
say sample2 rms flac "the old man walked slowly along the river until the sun went down"
say sample3 awb mp3 "there was nothing more to be said so they went home together"
say sample4 kal16 flac "every morning the children ran down the hill to meet the teacher"
say sample5 slt wav "he wrote a long letter to his brother and sent it the next day"
