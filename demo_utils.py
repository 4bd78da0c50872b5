"""Helpers behind demo.ipynb: weights, a dataset from a Google Drive link, transcription and scores,
all in this process. The functions the notebook calls print what went wrong in plain words instead
of raising, so that "Run all" never stops on a traceback. Paths are printed relative to the repository.
"""

import functools
import hashlib
import os
import shutil
from collections import Counter
from pathlib import Path

from audio import AUDIO_EXTENSIONS
from cli import DataError
from download import download, download_drive_folder, extract, is_archive, parse_link

WORK_DIR = Path("data") / "demo"  # downloads and extracted archives (git-ignored)
DOWNLOADED = Path("checkpoints") / "downloaded"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")
LOADED: dict = {}  # the weights the last get_weights call loaded, for the cells after it
PUBLIC_HINT = "open the sharing settings in Google Drive and choose 'Anyone with the link'"


class DemoError(Exception):
    """A problem the user can fix; the message says how."""


def never_raises(fn):
    """Print a plain message instead of a traceback; return None when something went wrong."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (Exception, SystemExit) as e:  # still a message, so the remaining cells run
            unexpected = f"unexpected problem ({type(e).__name__}: {e}); the cells below still run"
            print(f"\n>>> {e if isinstance(e, (DemoError, SystemExit)) else unexpected}")

    return wrapper


def rel(path) -> str:
    """A path relative to the current folder (the repository) when it is inside it."""
    resolved, cwd = Path(path).resolve(), Path.cwd().resolve()
    return str(resolved.relative_to(cwd)) or "." if resolved.is_relative_to(cwd) else str(path)


def _key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _from_env(value: str, name: str) -> str:
    if not (value := (value or "").strip().strip("'\"")) and (value := os.environ.get(name, "").strip()):
        print(f"(using {name}: {value})")
    return value


def fetch(link: str, dest: Path) -> Path:
    """Download (or locate) what the link points to -> a local folder or file. A link is downloaded
    once; running the cell again reuses the download."""
    kind, value = parse_link(link)
    if kind == "local":
        path = Path(value).expanduser()
        if not path.exists():
            raise DemoError(f"{value}: not a Google Drive link, a web address or a local path")
        return path
    # Drive: a folder link, a file link, or an id that may be either (try the folder first: a file id
    # gives no folder listing, while a folder id could be mistaken for an HTML page of a file)
    got = download_drive_folder(value, dest) if kind in ("folder", "drive") else None
    if got is None and kind != "folder":
        try:
            got = download(link, dest, expect="archive")  # a bad download is not kept
        except Exception as e:
            print(f"download: {type(e).__name__}: {e}")
    if got is None:
        hint = f"Is it shared publicly? {PUBLIC_HINT}, then" if kind != "url" else "Check the address and"
        raise DemoError(
            f"could not download {link}. {hint} run this cell again. (A zip of the folder works too.)"
        )
    return got


def extract_once(archive: Path, dest: Path) -> Path:
    """zip, tar, tar.gz (recognised by content, not by name) -> dest, extracted once."""
    if not (dest / ".extracted").exists():
        print(f"extracting {archive.name} ...")
        extract(archive, dest)
        (dest / ".extracted").touch()
    return dest


def find_dataset_root(path: Path) -> Path | None:
    """The shallowest folder under `path` (itself included) that contains audio/; ties -> most files."""
    level = [path]
    while level:
        if found := [d for d in level if (d / "audio").is_dir()]:
            return max(found, key=lambda d: (sum(1 for _ in (d / "audio").iterdir()), -len(str(d))))
        level = sorted(
            c for d in level for c in d.iterdir() if c.is_dir() and c.name[0] != "." and c.name != "__MACOSX"
        )
    return None


def prepare_dataset(link: str) -> Path:
    """A link or path -> the dataset root (the folder with audio/), downloading and extracting. An
    archive is extracted again when it changes."""
    got = fetch(link, WORK_DIR / "downloads")
    work = WORK_DIR / _key(f"{got.resolve()}:{got.stat().st_size}:{got.stat().st_mtime_ns}")
    if got.is_file():
        if not is_archive(got):
            raise DemoError(
                f"the link points to a single file ({got.name}), not to a folder or a zip/tar archive "
                "of one. Share the folder that holds audio/ (or a zip of it)."
            )
        got = extract_once(got, work / "extracted")
    root = find_dataset_root(got)
    if root is None:  # archives inside the folder (a Drive folder holding a zip, say)
        names = sorted(p for p in got.rglob("*") if p.name.lower().endswith(ARCHIVE_SUFFIXES))
        inner = [p for p in names if "__MACOSX" not in p.parts and is_archive(p)][:5]
        roots = [
            find_dataset_root(extract_once(archive, work / f"inner{i}")) for i, archive in enumerate(inner)
        ]
        root = next((r for r in roots if r), None)
    if root is None:
        entries = sorted(p.name + "/" * p.is_dir() for p in got.iterdir() if not p.name.startswith("."))
        held = (
            f"it holds: {', '.join(entries[:8])}{' ...' * (len(entries) > 8)}" if entries else "it is empty"
        )
        raise DemoError(
            f"no audio/ folder found in {rel(got)} ({held}). Expected layout: "
            "DATASET/audio/<id>.wav (or .flac/.mp3/.ogg) and optionally DATASET/transcriptions/<id>.txt"
        )
    return root


def describe_dataset(root: Path) -> bool:
    """Print what the dataset holds; True when it has transcriptions to score against."""
    files = [p for p in (root / "audio").iterdir() if p.is_file() and not p.name.startswith(".")]
    by_ext = Counter(p.suffix.lower() or "(no extension)" for p in files).most_common()
    known = [f"{n} {e}" for e, n in by_ext if e in AUDIO_EXTENSIONS]
    unknown = [f"{n} {e}" for e, n in by_ext if e not in AUDIO_EXTENSIONS]
    supported, n_audio = ", ".join(AUDIO_EXTENSIONS), sum(n for e, n in by_ext if e in AUDIO_EXTENSIONS)
    print(
        f"dataset: {rel(root)}\n  audio/: {n_audio} audio files" + (f" ({', '.join(known)})" if known else "")
    )
    if unknown:
        print(f"  warning: skipping files of unknown type ({', '.join(unknown)}); supported: {supported}")
    if not known:
        raise DemoError(f"{rel(root)}/audio has no audio files ({supported})")
    texts = list((root / "transcriptions").glob("*.txt")) if (root / "transcriptions").is_dir() else []
    print(f"  transcriptions/: {len(texts)} .txt files -> WER/CER will be computed" if texts
          else "  no transcriptions/ -> only transcripts are written (no WER/CER)")  # fmt: skip
    return bool(texts)


@never_raises
def get_weights(weights_link: str = "", lm_link: str = "") -> dict | None:
    """-> dict(checkpoint=Path, lm=Path or None); the checkpoint shipped in the repo by default."""
    from inference import DEFAULT_CHECKPOINT
    from model import load_checkpoint

    LOADED.pop("weights", None)
    weights_link, lm_link = _from_env(weights_link, "DEMO_WEIGHTS_LINK"), _from_env(lm_link, "DEMO_LM_LINK")
    checkpoint = (
        _local_or_download(weights_link, "checkpoint") if weights_link else Path(rel(DEFAULT_CHECKPOINT))
    )
    if not checkpoint.exists():
        hint = "paste a link to the weights into WEIGHTS_LINK above and run this cell again"
        raise DemoError(f"{checkpoint} is not in this copy of the repository; {hint}")
    try:
        state = load_checkpoint(checkpoint)
    except Exception as e:
        raise DemoError(f"{rel(checkpoint)} is not a checkpoint of this model ({e})") from e
    size = checkpoint.stat().st_size / 2**20
    print(f"weights: {rel(checkpoint)} ({size:.1f} MiB, trained {state.get('step', '?')} steps)")
    lm = _local_or_download(lm_link) if lm_link else None
    if not lm and (name := state.get("decoding", {}).get("lm")):  # an LM shipped beside the checkpoint
        lm = next((p for p in (Path(name), checkpoint.parent / name) if p.is_file()), None)
    print(f"language model: {rel(lm)}" if lm else "language model: none (beam search without an LM)")
    LOADED["weights"] = dict(checkpoint=checkpoint, lm=lm)
    return LOADED["weights"]


def _local_or_download(link: str, expect: str | None = None) -> Path:
    if parse_link(link)[0] == "local":
        if not Path(link).exists():
            raise DemoError(f"{link}: no such file, and not a Google Drive link or URL")
        return Path(link)
    try:
        return download(link, DOWNLOADED, expect=expect)
    except Exception as e:
        raise DemoError(
            f"could not download {link} ({e}). If it is a Google Drive link: {PUBLIC_HINT}"
        ) from e


def transcribe(data_dir: Path, out: Path, weights: dict) -> None:
    """inference.transcribe with the best decoder available (beam_lm > beam), greedy if that fails."""
    from inference import transcribe

    shutil.rmtree(out, ignore_errors=True)  # no predictions left over from an earlier run
    for decoder in (["beam_lm"] if weights.get("lm") else []) + ["beam", "greedy"]:
        try:
            lm = str(weights["lm"]) if decoder == "beam_lm" else None
            return transcribe(rel(data_dir), rel(out), rel(weights["checkpoint"]), decoder=decoder, lm=lm)
        except (DataError, ValueError, OSError) as e:  # a plain error: another decoder won't help
            raise DemoError(str(e)) from e
        except Exception as e:
            print(f"\n>>> {decoder} decoding failed ({type(e).__name__}: {e}); trying a simpler decoder")
    raise DemoError("inference failed (see the output above)")


@never_raises
def evaluate(data_dir, out="preds/demo_samples", weights: dict | None = None) -> None:
    """Transcribe a dataset folder, score it with calc_metrics when it has transcriptions and show a
    few predictions. Default weights: those the weights cell loaded (or, if not run, would load)."""
    import calc_metrics

    data_dir, out = Path(data_dir), Path(out)
    has_refs = describe_dataset(data_dir)
    weights = weights or LOADED.get("weights") or get_weights()
    if not weights:
        raise DemoError("no weights (see the message above and the weights cell); nothing to transcribe with")
    transcribe(data_dir, out, weights)
    print()
    refs = calc_metrics.read_texts(data_dir / "transcriptions") if has_refs else {}
    if has_refs:
        calc_metrics.main(["--refs", rel(data_dir / "transcriptions"), "--hyps", rel(out)])
    hyps = calc_metrics.read_texts(out)
    print(f"\n{min(len(hyps), 5)} example(s):")
    for uid in sorted(hyps)[:5]:
        if uid in refs:
            wer = calc_metrics.corpus_error_rates([refs[uid]], [hyps[uid]])["wer"]
            print(f"{uid}  (WER {100 * wer:.0f}%)\n  reference:  {refs[uid]}")
        print(f"{uid}\n" * (uid not in refs) + f"  prediction: {hyps[uid]}")
    print(f"\npredictions: {rel(out)}/<id>.txt")


@never_raises
def evaluate_link(link: str, weights: dict | None = None) -> None:
    """The data cell: link -> download, extract, find the dataset, transcribe, score."""
    link = _from_env(link, "DEMO_DATA_LINK")
    if not link:
        print("Paste a Google Drive link into DATA_LINK above (between the quotes) and run this cell again.")
        return
    evaluate(prepare_dataset(link), "preds/demo_data", weights)
