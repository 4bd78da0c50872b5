#!/usr/bin/env bash
# Word 3-gram and 4-gram LMs from Project Gutenberg books (public domain in the US), minus the books that
# LibriSpeech's dev/test sets read (recipes/exclude_books.txt: only ever add to it).
#   bash recipes/build_book_lm.sh BOOKS_TXT [OUT_DIR]
# BOOKS_TXT: the book text, one sentence per line (about 155 M words), as the shared data scripts build
# it from the rcdm-uga/Gutenberg_Text snapshot, with this repository's exclusion list:
#   python3 build_books.py SNAPSHOT_GIT_DIR books.txt --exclude recipes/exclude_books.txt
# Vocabulary: the 200k most frequent words, the rest become <unk> (as history; <unk> itself gets an unseen
# word's probability, so that the beam search does not prefer misspellings). --prune gives the cut-off per order
# from unigrams: n-grams seen fewer times are dropped. Each build writes the binary cache (.bin) beside
# its ARPA file. Peak memory, two shared cores: about 5 min and 3.2 GB for the 80 M-word 3-grams,
# 6 min and 4.5 GB for the 4-grams; the whole text takes about twice the memory.
set -euo pipefail
books=${1:?usage: build_book_lm.sh BOOKS_TXT [OUT_DIR]}
out=${2:-lm}
mkdir -p "$out"
first80m=(--text "$books" --max_vocab 200000 --max_words 80000000)  # the first 80 M words
python lm.py build "${first80m[@]}" --order 3 --prune 1 2 3 --out "$out/books3.arpa.gz"
python lm.py build "${first80m[@]}" --order 3 --prune 1 3 5 --out "$out/books3_small.arpa.gz"
python lm.py build "${first80m[@]}" --order 3 --prune 1 5 10 --out "$out/books3_tiny.arpa.gz"  # shipped until release 3's stage 11
python lm.py build "${first80m[@]}" --order 4 --prune 1 2 3 3 --out "$out/books4.arpa.gz"
python lm.py build "${first80m[@]}" --order 4 --prune 1 1 2 2 --out "$out/books4_large.arpa.gz"
python lm.py build --text "$books" --max_vocab 200000 --order 3 --prune 1 2 3 --out "$out/books3_full.arpa.gz"
# the shipped checkpoints/books3.arpa.gz (30 MB): the whole text, cut-offs between books3_small's and books3_tiny's
python lm.py build --text "$books" --max_vocab 200000 --order 3 --prune 1 4 8 --out "$out/books3_medium.arpa.gz"
ls -la "$out"/books*.arpa.gz*
