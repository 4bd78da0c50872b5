"""Helpers behind demo.ipynb: weights, a dataset from a Google Drive link, transcription and scores.

The functions the notebook calls print what went wrong in plain words instead of raising, so that
"Run all" never stops on a traceback. Paths are printed relative to the repository.

Re-execute the notebook in place (outputs saved, absolute paths of this machine removed), with the
samples zipped as a stand-in for a grader's Drive link:

    python -c "import shutil; shutil.make_archive('data/demo_samples', 'zip', '.', 'samples')"
    DEMO_DATA_LINK=data/demo_samples.zip python demo_utils.py execute

Before checkpoints/model.pt exists, add DEMO_WEIGHTS_LINK=runs/<run>/last.pt (any checkpoint);
DEMO_SKIP_INSTALL=1 skips the pip cell.
"""

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

from data import AUDIO_EXTENSIONS

REPO = Path(__file__).resolve().parent
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
        except DemoError as e:
            print(f"\n>>> {e}")
        except Exception as e:  # anything else: still a message, so the remaining cells run
            print(f"\n>>> unexpected problem ({type(e).__name__}: {e}); the cells below still run")
        return None

    return wrapper


def rel(path) -> str:
    """A path relative to the current folder (the repository) when it is inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


def _key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _from_env(value: str, name: str) -> str:
    value = (value or "").strip().strip("'\"")
    if not value and os.environ.get(name):
        value = os.environ[name].strip()
        print(f"(using {name}: {value})")
    return value


# ----------------------------------------------------------------------------- links and downloads


def parse_link(link: str) -> tuple[str, str]:
    """-> (kind, value): kind is 'folder', 'file' or 'drive' (a Drive id that may be either) with the
    Drive id, 'url' for other web links, 'local' for a path on this machine."""
    link = link.strip().strip("'\"")
    if m := re.search(r"drive\.google\.com/.*folders/([\w-]+)", link):
        return "folder", m.group(1)
    if m := re.search(r"google\.com/(?:.*/)?(?:file/)?d/([\w-]+)", link):
        return "file", m.group(1)
    if m := re.search(r"google\.com/.*[?&]id=([\w-]+)", link):
        return ("drive" if "/open?" in link else "file"), m.group(1)
    if link.startswith(("http://", "https://")):
        return "url", link
    if re.fullmatch(r"[\w-]{25,}", link) and not Path(link).exists():
        return "drive", link
    return "local", link


def _gdown_file(drive_id: str, dest: Path) -> Path | None:
    import gdown

    try:
        out = gdown.download(id=drive_id, output=str(dest) + os.sep, quiet=False)
    except Exception as e:  # gdown raises for private files, returns None in some versions
        print(f"gdown: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")
        return None
    return Path(out) if out else None


def _gdown_folder(drive_id: str, dest: Path) -> Path | None:
    import gdown

    try:
        files = gdown.download_folder(id=drive_id, output=str(dest), quiet=False)
    except Exception as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"gdown: {type(e).__name__}: {message}")
        return None
    if not files:
        return None
    if int(gdown.__version__.split(".")[0]) < 6 and len(files) >= 50:
        print("warning: gdown < 6 downloads at most 50 files per folder; run `pip install -U gdown`")
    return dest


def fetch(link: str, dest: Path) -> Path:
    """Download (or locate) what the link points to -> a local folder or file."""
    kind, value = parse_link(link)
    if kind == "local":
        path = Path(value).expanduser()
        if not path.exists():
            raise DemoError(f"{value}: not a Google Drive link, a web address or a local path")
        return path
    dest.mkdir(parents=True, exist_ok=True)
    if kind == "url":
        from data import download_file

        name = Path(value.split("?")[0]).name or "download"
        try:
            download_file(value, dest / name)
        except Exception as e:
            raise DemoError(f"could not download {value}: {e}") from e
        return dest / name
    # Drive: a folder link, a file link, or an id that may be either (try the folder first: a file id
    # gives no folder listing, while a folder id could be mistaken for an HTML page of a file)
    got = None
    if kind in ("folder", "drive"):
        got = _gdown_folder(value, dest / "folder")
    if got is None and kind in ("file", "drive"):
        got = _gdown_file(value, dest / "file")
    if got is None:
        raise DemoError(
            f"could not download {link} from Google Drive. Is it shared publicly? {PUBLIC_HINT}, "
            "then run this cell again. (A zip of the folder works too.)"
        )
    return got


# ----------------------------------------------------------------------------- archives, dataset root


def is_archive(path: Path) -> bool:
    return path.is_file() and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))


def extract(archive: Path, dest: Path) -> Path:
    """zip, tar, tar.gz (recognised by content, not by name) -> dest."""
    marker = dest / ".extracted"
    if marker.exists():
        return dest
    print(f"extracting {archive.name} ...")
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:  # zipfile drops '..' and absolute parts of member names
            z.extractall(dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            try:
                t.extractall(dest, filter="data")
            except TypeError:  # Python without extraction filters
                t.extractall(dest)
    else:
        raise DemoError(f"{archive.name} is not a zip or tar(.gz) archive")
    marker.touch()
    return dest


def _skip(d: Path) -> bool:
    return d.name.startswith(".") or d.name == "__MACOSX"


def find_dataset_root(path: Path) -> Path | None:
    """The shallowest folder under `path` (itself included) that contains audio/; ties -> most files."""
    level = [path]
    while level:
        found = [d for d in level if (d / "audio").is_dir()]
        if found:
            return max(found, key=lambda d: (sum(1 for _ in (d / "audio").iterdir()), -len(str(d))))
        level = sorted(c for d in level for c in d.iterdir() if c.is_dir() and not _skip(c))
    return None


def prepare_dataset(link: str) -> Path:
    """A link or path -> the dataset root (the folder with audio/), downloading and extracting."""
    kind, value = parse_link(link)
    if kind == "local":  # used in place; an archive is extracted again when it changes
        got = fetch(link, Path())
        work = WORK_DIR / _key(f"{got.resolve()}:{_stat(got)}")
    else:  # a link is downloaded once; running the cell again reuses the download
        work = WORK_DIR / _key(value)
        done = work / ".complete"
        if done.exists() and Path(done.read_text()).exists():
            got = Path(done.read_text())
        else:
            got = fetch(link, work / "download")
            done.write_text(str(got))
    if got.is_file():
        if not is_archive(got):
            raise DemoError(
                f"the link points to a single file ({got.name}), not to a folder or a zip/tar archive "
                "of one. Share the folder that holds audio/ (or a zip of it)."
            )
        got = extract(got, work / "extracted")
    root = find_dataset_root(got)
    if root is None:  # archives inside the folder (a Drive folder holding a zip, say)
        names = sorted(p for p in got.rglob("*") if p.name.lower().endswith(ARCHIVE_SUFFIXES))
        inner = [p for p in names if "__MACOSX" not in p.parts and is_archive(p)][:5]
        for i, archive in enumerate(inner):
            extract(archive, work / f"inner{i}")
        roots = [r for i in range(len(inner)) if (r := find_dataset_root(work / f"inner{i}"))]
        root = roots[0] if roots else None
    if root is None:
        raise DemoError(
            f"no audio/ folder found in {rel(got)} ({_summary(got)}). Expected layout: "
            "DATASET/audio/<id>.wav (or .flac/.mp3/.ogg) and optionally DATASET/transcriptions/<id>.txt"
        )
    return root


def _stat(path: Path) -> str:
    try:
        st = path.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return ""


def _summary(path: Path) -> str:
    if path.is_file():
        return f"a file, {path.stat().st_size} bytes"
    entries = sorted(
        p.name + ("/" if p.is_dir() else "") for p in path.iterdir() if not p.name.startswith(".")
    )
    shown = ", ".join(entries[:8]) + (" ..." if len(entries) > 8 else "")
    return f"it holds: {shown}" if entries else "it is empty"


def describe_dataset(root: Path) -> bool:
    """Print what the dataset holds; True when it has transcriptions to score against."""
    files = [p for p in (root / "audio").iterdir() if p.is_file() and not p.name.startswith(".")]
    by_ext = Counter(p.suffix.lower() or "(no extension)" for p in files)
    known = {e: n for e, n in by_ext.items() if e in AUDIO_EXTENSIONS}
    unknown = {e: n for e, n in by_ext.items() if e not in AUDIO_EXTENSIONS}
    counts = ", ".join(f"{n} {e}" for e, n in sorted(known.items(), key=lambda x: -x[1]))
    print(f"dataset: {rel(root)}")
    print(f"  audio/: {sum(known.values())} audio files" + (f" ({counts})" if counts else ""))
    if unknown:
        listed = ", ".join(f"{n} {e}" for e, n in unknown.items())
        print(
            f"  warning: skipping files of unknown type ({listed}); supported: {', '.join(AUDIO_EXTENSIONS)}"
        )
    if not known:
        raise DemoError(f"{rel(root)}/audio has no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    texts = list((root / "transcriptions").glob("*.txt")) if (root / "transcriptions").is_dir() else []
    if texts:
        print(f"  transcriptions/: {len(texts)} .txt files -> WER/CER will be computed")
    else:
        print("  no transcriptions/ -> only transcripts are written (no WER/CER)")
    return bool(texts)


# ----------------------------------------------------------------------------- weights


@never_raises
def get_weights(weights_link: str = "", lm_link: str = "") -> dict | None:
    """-> dict(checkpoint=Path, lm=Path or None); the checkpoint shipped in the repo by default."""
    from config import config_from_dict
    from inference import DEFAULT_CHECKPOINT, download_weights
    from train import load_checkpoint

    LOADED.pop("weights", None)
    weights_link = _from_env(weights_link, "DEMO_WEIGHTS_LINK")
    lm_link = _from_env(lm_link, "DEMO_LM_LINK")
    if not weights_link:
        checkpoint = Path(rel(DEFAULT_CHECKPOINT))
        if not checkpoint.exists():
            raise DemoError(
                f"{checkpoint} is not in this copy of the repository; paste a link to the weights "
                "into WEIGHTS_LINK above and run this cell again"
            )
    elif parse_link(weights_link)[0] == "local":
        checkpoint = Path(weights_link)
        if not checkpoint.exists():
            raise DemoError(f"{weights_link}: no such file, and not a Google Drive link or URL")
    else:
        checkpoint = _download(
            weights_link, DOWNLOADED / f"weights-{_key(weights_link)}.pt", download_weights
        )
    try:
        state = load_checkpoint(checkpoint)
        cfg = config_from_dict(state["config"])
    except (Exception, SystemExit) as e:
        raise DemoError(f"{rel(checkpoint)} is not a checkpoint of this model ({e})") from e
    size = checkpoint.stat().st_size / 2**20
    print(f"weights: {rel(checkpoint)} ({size:.1f} MiB, trained {state.get('step', '?')} steps)")

    lm = None
    if lm_link:
        kind = parse_link(lm_link)[0]
        lm = Path(lm_link) if kind == "local" else _download_lm(lm_link, download_weights)
        if not lm.exists():
            raise DemoError(f"{lm_link}: no such file, and not a Google Drive link or URL")
    else:  # the checkpoint may name an LM shipped beside it (its path relative to the checkpoint)
        name = state.get("decoding", {}).get("lm") or cfg.lm
        for candidate in (Path(name), checkpoint.parent / name) if name else ():
            if candidate.is_file():
                lm = candidate
                break
    print(f"language model: {rel(lm)}" if lm else "language model: none (beam search without an LM)")
    LOADED["weights"] = dict(checkpoint=checkpoint, lm=lm)
    return LOADED["weights"]


def _download(link: str, dest: Path, download_weights) -> Path:
    try:
        return download_weights(link, dest)
    except Exception as e:
        raise DemoError(
            f"could not download {link} ({e}). If it is a Google Drive link: {PUBLIC_HINT}"
        ) from e


def _download_lm(link: str, download_weights) -> Path:
    base = DOWNLOADED / f"lm-{_key(link)}"
    for suffix in (".arpa", ".arpa.gz"):
        if (done := base.with_name(base.name + suffix)).exists():
            return done
    raw = _download(link, base.with_name(base.name + ".download"), download_weights)
    with open(raw, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return raw.replace(base.with_name(base.name + (".arpa.gz" if gz else ".arpa")))


# ----------------------------------------------------------------------------- transcription and scores


def run(cmd: list[str]) -> tuple[int, str]:
    """Run a command, showing its output as it comes; -> (exit code, output)."""
    print("$ python " + " ".join(cmd))
    env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_MININTERVAL="5")
    proc = subprocess.Popen([sys.executable, *cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    chunks = []
    while chunk := proc.stdout.read1(4096):
        text = chunk.decode("utf-8", "replace")
        chunks.append(text)
        sys.stdout.write(text)
        sys.stdout.flush()
    return proc.wait(), "".join(chunks)


def transcribe(data_dir: Path, out: Path, weights: dict) -> bool:
    """inference.py with the best decoder available (beam_lm > beam), greedy if that fails."""
    shutil.rmtree(out, ignore_errors=True)  # no predictions left over from an earlier run
    common = ["inference.py", "--data_dir", rel(data_dir), "--out", rel(out)]
    common += ["--checkpoint", rel(weights["checkpoint"])]
    decoders = [["--decoder", "beam_lm", "--lm", rel(weights["lm"])]] if weights.get("lm") else []
    decoders += [["--decoder", "beam"], ["--decoder", "greedy"]]
    for i, decoder in enumerate(decoders):
        code, output = run(common + decoder)
        if code == 0:
            return True
        if "error:" in output and "Traceback" not in output:  # a plain error: another decoder won't help
            raise DemoError(output.strip().splitlines()[-1])
        if i + 1 < len(decoders):
            print(f"\n>>> {decoder[1]} decoding failed; trying {decoders[i + 1][1]} decoding")
    raise DemoError("inference failed (see the output above)")


def score(refs: Path, hyps: Path, examples: int = 5) -> None:
    """calc_metrics.py, then a few predictions next to their references."""
    from calc_metrics import corpus_error_rates, read_texts

    code, _ = run(["calc_metrics.py", "--refs", rel(refs), "--hyps", rel(hyps)])
    if code != 0:
        raise DemoError("calc_metrics.py failed (see the output above)")
    show_examples(read_texts(hyps), read_texts(refs), examples, corpus_error_rates)


def show_examples(hyps: dict, refs: dict | None, n: int, rates=None) -> None:
    ids = sorted(hyps)[:n]
    print(f"\n{len(ids)} example(s):")
    for uid in ids:
        if refs and uid in refs:
            wer = rates([refs[uid]], [hyps[uid]])["wer"]
            print(f"{uid}  (WER {100 * wer:.0f}%)\n  reference:  {refs[uid]}\n  prediction: {hyps[uid]}")
        else:
            print(f"{uid}\n  prediction: {hyps[uid]}")


@never_raises
def evaluate(data_dir, out="preds/demo_samples", weights: dict | None = None) -> None:
    """Transcribe a dataset folder and score it when it has transcriptions. Default weights: those
    the weights cell loaded (or, when it was not run, those it would load)."""
    from calc_metrics import read_texts

    data_dir, out = Path(data_dir), Path(out)
    has_refs = describe_dataset(data_dir)
    weights = weights or LOADED.get("weights") or get_weights()
    if not weights:
        raise DemoError("no weights (see the message above and the weights cell); nothing to transcribe with")
    transcribe(data_dir, out, weights)
    print()
    if has_refs:
        score(data_dir / "transcriptions", out)
    else:
        show_examples(read_texts(out), None, 5)
    print(f"\npredictions: {rel(out)}/<id>.txt")


@never_raises
def evaluate_link(link: str, weights: dict | None = None) -> None:
    """The data cell: link -> download, extract, find the dataset, transcribe, score."""
    link = _from_env(link, "DEMO_DATA_LINK")
    if not link:
        print("Paste a Google Drive link into DATA_LINK above (between the quotes) and run this cell again.")
        return
    root = prepare_dataset(link)
    evaluate(root, "preds/demo_data", weights)


# ----------------------------------------------------------------------------- re-executing the notebook


def run_notebook(path: Path, cwd: Path, timeout: int = 1800):
    """Execute a notebook headless in `cwd` -> the executed notebook (nbformat node)."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.record_timing = False
    client.execute()
    return nb


def clean_outputs(nb, root: Path) -> list[str]:
    """Merge consecutive stream outputs, keep only the last state of progress bars and replace the
    absolute repository path; -> the error outputs found."""
    errors = []
    for cell in nb.cells:
        merged = []
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                errors.append(f"{output.ename}: {output.evalue}")
            if output.output_type == "stream" and merged and merged[-1].get("name") == output.name:
                merged[-1].text += output.text
            else:
                merged.append(output)
        for output in merged:
            if output.output_type == "stream":
                text = "\n".join(line.rsplit("\r", 1)[-1] for line in output.text.split("\n"))
                output.text = text.replace(str(root.resolve()) + os.sep, "")
        if cell.cell_type == "code":
            cell.outputs = merged
    return errors


def execute_in_place(path: Path) -> None:
    import nbformat

    nb = run_notebook(path, REPO)
    errors = clean_outputs(nb, REPO)
    if errors:
        sys.exit("not saved: the notebook has error outputs: " + "; ".join(errors))
    nbformat.write(nb, path)
    print(f"executed and saved {path}")


if __name__ == "__main__":
    if sys.argv[1:2] != ["execute"]:
        sys.exit("usage: python demo_utils.py execute [demo.ipynb]")
    execute_in_place(Path(sys.argv[2] if len(sys.argv) > 2 else REPO / "demo.ipynb"))
