"""demo.ipynb runs headless from start to end without an error output, on a tiny checkpoint trained
here and data written here (no network: the install cell is skipped, links are local paths)."""

import copy
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
import zipfile
from pathlib import Path

import nbformat
import pytest
import soundfile as sf
from conftest import REPO, random_texts, tone_speech, write_custom_dir
from notebook import clean_outputs, run_notebook

import demo_utils
import lm

RATES = re.compile(r"WER \d+\.\d+%\s+CER \d+\.\d+%")
NOT_COPIED = shutil.ignore_patterns(
    ".git", "data", "runs", "preds", "wandb", "checkpoints", "docs", "bench", ".*", "__pycache__"
)


@pytest.fixture(scope="session")
def python3_kernel():
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--user"], check=True)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run) -> Path:
    return tiny_run[0] / "last.pt"


@pytest.fixture
def repo_copy(tmp_path, monkeypatch, python3_kernel) -> Path:
    """The notebook runs in a copy of the repository, so its downloads and predictions stay in tmp."""
    copy_dir = tmp_path / "repo"
    shutil.copytree(REPO, copy_dir, ignore=NOT_COPIED)
    for name in ("DEMO_DATA_LINK", "DEMO_WEIGHTS_LINK", "DEMO_LM_LINK", "DEMO_REPO_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEMO_SKIP_INSTALL", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the machine's cores are shared
    return copy_dir


def cell_text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def pasted(cell, link: str):
    """The data cell as a user leaves it after pasting `link`."""
    cell = copy.deepcopy(cell)
    cell.id = uuid.uuid4().hex[:8]  # ids must be unique within a notebook
    cell.source = cell.source.replace('DATA_LINK = ""', f"DATA_LINK = {str(link)!r}", 1)
    assert str(link) in cell.source
    return cell


def execute(cells, cwd: Path):
    path = cwd / "run.ipynb"
    nb = nbformat.read(REPO / "demo.ipynb", as_version=4)
    nb.cells = cells
    nbformat.write(nb, path)
    nb = run_notebook(path, cwd, timeout=300)
    assert clean_outputs(nb, cwd) == [], "a cell ended with an error"
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert "Traceback" not in cell_text(cell)
    return code


def test_notebook_end_to_end(repo_copy, tiny_checkpoint, tmp_path, monkeypatch):
    texts = random_texts(5, seed=5)
    folder = write_custom_dir(tmp_path / "mine", texts)
    wrapped = write_custom_dir(tmp_path / "zipme" / "wrapper" / "test_set", texts)
    with zipfile.ZipFile(tmp_path / "set.zip", "w") as z:
        for p in sorted(wrapped.parent.parent.rglob("*")):
            z.write(p, p.relative_to(wrapped.parent.parent))
    (tmp_path / "no_audio").mkdir()
    (tmp_path / "no_audio" / "notes.txt").write_text("hello\n")
    (tmp_path / "corpus.txt").write_text("\n".join(random_texts(50, seed=6).values()))
    lm.main(
        ["build", "--text", str(tmp_path / "corpus.txt"), "--order", "2", "--out", str(tmp_path / "lm.arpa")]
    )
    monkeypatch.setenv("DEMO_WEIGHTS_LINK", str(tiny_checkpoint))
    monkeypatch.setenv("DEMO_LM_LINK", str(tmp_path / "lm.arpa"))
    monkeypatch.setenv("DEMO_DATA_LINK", str(folder))

    nb = nbformat.read(REPO / "demo.ipynb", as_version=4)
    data_cell = nb.cells[-1]
    assert 'DATA_LINK = ""' in data_cell.source
    for cell in nb.cells[1:]:  # a markdown explanation above every code cell
        if cell.cell_type == "code":
            assert nb.cells[nb.cells.index(cell) - 1].cell_type == "markdown"
    cells = execute(
        nb.cells + [pasted(data_cell, tmp_path / "set.zip"), pasted(data_cell, tmp_path / "no_audio")],
        repo_copy,
    )
    setup, install, weights, samples, from_env, from_zip, no_audio = map(cell_text, cells)

    assert "repository: repo" in setup
    assert re.search(r"device: (cpu \(no GPU found|cuda \()", install)
    assert "weights:" in weights and "trained 150 steps" in weights and "language model: /" in weights
    assert RATES.search(samples) and "reference:" in samples and "prediction:" in samples
    assert "5 audio files (2 .wav, 2 .flac, 1 .mp3)" in samples  # counts per format

    assert "5 audio files (5 .wav)" in from_env and RATES.search(from_env)
    assert "with beam_lm decoding on" in from_env  # the best decoder there is: an LM was given

    assert "extracting set.zip" in from_zip and "wrapper/test_set" in from_zip  # found inside the wrapper
    assert RATES.search(from_zip) and "prediction:" in from_zip
    preds = repo_copy / "preds" / "demo_data"
    assert sorted(p.stem for p in preds.glob("*.txt")) == sorted(texts)

    assert "no audio/ folder found" in no_audio and "notes.txt" in no_audio


def test_empty_link_asks_for_one(repo_copy):
    nb = nbformat.read(REPO / "demo.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    setup, install, data = execute([code[0], code[1], code[-1]], repo_copy)
    assert "Paste a Google Drive link into DATA_LINK" in cell_text(data)


def test_outside_the_repository_it_clones_or_explains(tmp_path, monkeypatch, python3_kernel):
    monkeypatch.setenv("DEMO_SKIP_INSTALL", "1")
    nb = nbformat.read(REPO / "demo.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    (tmp_path / "ok").mkdir()
    monkeypatch.setenv("DEMO_REPO_URL", str(REPO))  # git clones a local path as it would a URL
    assert f"repository: {REPO.name}" in cell_text(execute(code[:1], tmp_path / "ok")[0])
    assert (tmp_path / "ok" / REPO.name / "inference.py").exists()

    (tmp_path / "bad").mkdir()
    monkeypatch.setenv("DEMO_REPO_URL", str(tmp_path / "no-such-repo"))
    setup, install, *rest = map(cell_text, execute(nb.cells, tmp_path / "bad"))
    assert "could not clone" in setup and "set REPO_URL" in setup
    assert "could not be loaded" in install
    assert all("skipped: the setup cells above did not succeed" in text for text in rest)


# ----------------------------------------------------------------------------- helpers, in this process


def test_drive_links_are_recognised():
    file_id = "1AbCdEfGhIjKlMnOpQrStUvWxYz012345"
    assert demo_utils.parse_link(f"https://drive.google.com/drive/folders/{file_id}?usp=sharing") == (
        "folder",
        file_id,
    )
    assert demo_utils.parse_link(f"https://drive.google.com/drive/u/0/folders/{file_id}")[0] == "folder"
    assert demo_utils.parse_link(f"https://drive.google.com/file/d/{file_id}/view?usp=sharing") == (
        "file",
        file_id,
    )
    assert demo_utils.parse_link(f"https://drive.google.com/uc?id={file_id}&export=download")[0] == "file"
    assert demo_utils.parse_link(f"https://drive.google.com/open?id={file_id}") == ("drive", file_id)
    assert demo_utils.parse_link(f"  '{file_id}' ") == ("drive", file_id)
    assert demo_utils.parse_link("https://example.com/set.zip") == ("url", "https://example.com/set.zip")
    assert demo_utils.parse_link("data/set.zip") == ("local", "data/set.zip")


def test_private_drive_link_gives_a_plain_message(tmp_path, monkeypatch, capsys):
    import gdown

    def refuse(*args, **kwargs):
        raise gdown.exceptions.FileURLRetrievalError("Cannot retrieve the public link of the file.")

    monkeypatch.setattr(gdown, "download", refuse)
    monkeypatch.setattr(gdown, "download_folder", lambda *args, **kwargs: None)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEMO_DATA_LINK", raising=False)
    for link in ("https://drive.google.com/drive/folders/1AbCdEfGhIjKlMnOpQrStUvWxYz012345",
                 "https://drive.google.com/file/d/1AbCdEfGhIjKlMnOpQrStUvWxYz012345/view"):  # fmt: skip
        assert demo_utils.evaluate_link(link) is None
        assert "'Anyone with the link'" in capsys.readouterr().out


def test_tar_gz_with_extra_folders_and_mixed_formats(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    root = write_custom_dir(tmp_path / "src" / "outer" / "inner" / "set", {"a": "bad", "b": "cab"})
    sf.write(root / "audio" / "c.flac", tone_speech("dad"), 16000)
    (root / "audio" / "d.wma").write_bytes(b"not supported")  # .m4a is read now (PyAV)
    (tmp_path / "src" / "__MACOSX" / "audio").mkdir(parents=True)  # shallower, but junk
    with tarfile.open(tmp_path / "set.tar.gz", "w:gz") as t:
        t.add(tmp_path / "src", arcname="src")
    found = demo_utils.prepare_dataset(str(tmp_path / "set.tar.gz"))
    assert found.parts[-3:] == ("outer", "inner", "set") and (found / "audio" / "a.wav").exists()
    assert demo_utils.describe_dataset(found) is True
    out = capsys.readouterr().out
    assert (
        "3 audio files (2 .wav, 1 .flac)" in out and "warning: skipping files of unknown type (1 .wma)" in out
    )


def test_a_single_audio_file_is_not_a_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    sf.write(tmp_path / "one.wav", tone_speech("bad"), 16000)
    assert demo_utils.evaluate_link(str(tmp_path / "one.wav")) is None
    assert "not to a folder or a zip/tar archive" in capsys.readouterr().out
