"""Text corpus for language models: text files in, one normalised sentence per line out, with the books that
an exclusion list names left out (books read in test sets: an LM trained on them scores test audio unfairly well).

    python recipes/corpus.py BOOKS_DIR bible.txt ... --exclude recipes/exclude_books.txt --out corpus.txt
"""

import argparse
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arpa import open_text  # noqa: E402
from cli import run  # noqa: E402
from tokenizer import normalize_text  # noqa: E402


def read_exclusions(path: str) -> re.Pattern | None:
    """One regular expression per line ('#' comments), matched anywhere in a book's path, case-insensitive."""
    with open(path, encoding="utf-8") as f:
        patterns = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.I) if patterns else None


def corpus_files(paths: list[str], exclude: re.Pattern | None) -> tuple[list[str], list[str]]:
    """(kept, excluded) text files: each path as it is, each folder's *.txt files, sorted."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            for root, _, names in sorted(os.walk(path)):
                files += [os.path.join(root, name) for name in sorted(names) if name.endswith(".txt")]
        else:
            files.append(path)
    excluded = [p for p in files if exclude is not None and exclude.search(p)]
    return [p for p in files if p not in set(excluded)], excluded


def write_corpus(paths: list[str], out: str, exclude_path: str | None = None) -> dict[str, int]:
    """Concatenate text files (one sentence per line) into one normalised corpus, leaving out every file
    whose path matches the exclusion list (books read in test sets). Returns the counts it wrote."""
    exclude = read_exclusions(exclude_path) if exclude_path else None
    kept, excluded = corpus_files(paths, exclude)
    stats = {"files": len(kept), "excluded": len(excluded), "sentences": 0, "words": 0}
    with open_text(out, "wt") as f:
        for path in kept:
            with open_text(path) as text:
                for line in text:
                    line = normalize_text(line)
                    if line:
                        f.write(line + "\n")
                        stats["sentences"] += 1
                        stats["words"] += line.count(" ") + 1
    for path in excluded:
        print(f"excluded: {path}", file=sys.stderr)
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="+", help="text files, one sentence per line, or folders of *.txt")
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--exclude", help="regular expressions on file paths, one a line (books to leave out)"
    )
    args = parser.parse_args(argv)
    stats = write_corpus(args.paths, args.out, args.exclude)
    print(f"{args.out}: " + ", ".join(f"{v} {k}" for k, v in stats.items()), file=sys.stderr)


if __name__ == "__main__":
    run(main, OSError)  # a missing text file, an unwritable --out
