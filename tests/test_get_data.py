"""Getting the data: OpenSLR downloads from a local HTTP server (good, md5 mismatch, truncated, an HTML
page in place of the file, no network), and Common Voice releases converted to the custom layout."""

import csv
import hashlib
import io
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, python, tone_speech, write_librispeech

import data
from cli import DataError
from config import get_config
from data import LibriSpeechDataset
from download import extract

sys.path.insert(0, str(REPO / "recipes"))
import split_by_text  # noqa: E402


def librispeech_archive(tmp_path: Path, split: str) -> bytes:
    """A .tar.gz laid out as OpenSLR's: LibriSpeech/<split>/<speaker>/<chapter>/... and LibriSpeech/*.TXT."""
    root = tmp_path / "archive_source"
    write_librispeech(root / "LibriSpeech" / split)
    (root / "LibriSpeech" / "SPEAKERS.TXT").write_text("19 | F | train-clean-5 | 25.19 | Kara Shallenberg\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(root / "LibriSpeech", arcname="LibriSpeech")
    return buffer.getvalue()


def serve(monkeypatch, http_folder, name: str, payload: bytes, md5: str | None = None) -> str:
    """Serve `payload` as DOWNLOADS[name]'s file, under that md5 (default: the payload's own); -> its URL."""
    served, url = http_folder
    resource, file, _ = data.DOWNLOADS[name]
    (served / resource).mkdir(exist_ok=True)
    (served / resource / file).write_bytes(payload)
    monkeypatch.setattr(data, "OPENSLR_URL", url)
    monkeypatch.setitem(
        data.DOWNLOADS, name, (resource, file, hashlib.md5(payload).hexdigest() if md5 is None else md5)
    )
    return f"{url}/{resource}/{file}"


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_mini_librispeech_download_extracts_to_the_layout_training_reads(http_folder, monkeypatch, tmp_path):
    payload = librispeech_archive(tmp_path, "train-clean-5")
    serve(monkeypatch, http_folder, "train-clean-5", payload)
    root = tmp_path / "data"
    data.main(["download", str(root), "train-clean-5"])
    split = root / "LibriSpeech" / "train-clean-5"
    assert (split / ".complete").exists() and (root / "LibriSpeech" / "SPEAKERS.TXT").exists()
    utterances = data.read_data(str(split))
    assert [(u.id, u.text) for u in utterances] == [("19-198-0000", "bad cab"), ("19-198-0001", "face deaf")]
    # neither the archive nor a temporary folder is kept beside what it held
    assert [p.name for p in root.iterdir()] == ["LibriSpeech"]
    assert sorted(p.name for p in split.parent.iterdir()) == ["SPEAKERS.TXT", "train-clean-5"]
    # done once: the server may go away
    (http_folder[0] / "31" / "train-clean-5.tar.gz").unlink()
    assert data.download_openslr("train-clean-5", root) == split


def test_librispeech_dataset_downloads_a_split_it_does_not_find(http_folder, monkeypatch, tmp_path):
    payload, root = librispeech_archive(tmp_path, "dev-clean"), tmp_path / "data"
    serve(monkeypatch, http_folder, "dev-clean", payload)
    dataset = LibriSpeechDataset(str(root), "dev-clean", get_config("tiny"), download=True)
    assert [u.text for u in dataset.utterances] == ["bad cab", "face deaf"]
    assert (root / "LibriSpeech" / "dev-clean" / "19" / "198").is_dir()
    # another split's damaged archive is caught by the md5 check and removed
    serve(monkeypatch, http_folder, "dev-other", payload, md5="0" * 32)
    with pytest.raises(DataError, match="md5 mismatch"):
        data.download_openslr("dev-other", root)
    assert not list(root.rglob("dev-other*"))


def test_an_interrupted_extraction_keeps_the_checked_archive(http_folder, monkeypatch, tmp_path):
    serve(monkeypatch, http_folder, "train-clean-5", librispeech_archive(tmp_path, "train-clean-5"))
    root = tmp_path / "data"

    def interrupted(archive, dest):
        (Path(dest) / "LibriSpeech").mkdir()  # some of it written, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "extract", interrupted)
    with pytest.raises(KeyboardInterrupt):
        data.download_openslr("train-clean-5", root)
    assert [p.name for p in root.rglob("*") if p.is_file()] == ["train-clean-5.tar.gz"]
    assert not (root / "LibriSpeech" / "train-clean-5").exists()
    monkeypatch.setattr(data, "extract", extract)  # the real one, and the server's file gone:
    (http_folder[0] / "31" / "train-clean-5.tar.gz").unlink()  # the kept archive is used
    split = data.download_openslr("train-clean-5", root)
    assert [u.id for u in data.read_data(str(split))] == ["19-198-0000", "19-198-0001"]


def truncated(payload: bytes) -> bytes:
    return payload[: len(payload) // 2]


HTML_PAGE = b"<!DOCTYPE html><html><body>503 Service Unavailable</body></html>"


@pytest.mark.parametrize(
    "what, md5, expected",
    [
        ("md5 mismatch", "0" * 32, "md5 mismatch"),
        ("truncated archive, no published md5", "", "a damaged archive"),
        ("an HTML error page", None, "the download is a web page"),
    ],
)
def test_a_bad_download_is_one_error_line_and_leaves_nothing(
    http_folder, monkeypatch, tmp_path, capsys, what, md5, expected
):
    payload = librispeech_archive(tmp_path, "dev-clean-2")
    payload = {"md5 mismatch": payload, "an HTML error page": HTML_PAGE}.get(what, truncated(payload))
    url = serve(monkeypatch, http_folder, "dev-clean-2", payload, md5)
    root = tmp_path / "data"
    with pytest.raises(SystemExit) as stop:
        data.main(["download", str(root), "dev-clean-2"])
    message = str(stop.value.code)
    assert message.startswith(f"error: {url}: {expected}") and "\n" not in message
    assert files_under(root) in ([], ["LibriSpeech"])  # nothing half-written
    if md5 == "":  # none published: the download says so, with the md5 it got
        assert f"its md5 is {hashlib.md5(payload).hexdigest()} (not verified)" in capsys.readouterr().out


def test_official_lm_download_and_no_network(http_folder, monkeypatch, tmp_path):
    arpa = b"\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\t<s>\t0\n-0.5\t</s>\n-0.3\tHELLO\n\n\\end\\\n"
    serve(monkeypatch, http_folder, "3-gram.pruned.3e-7", arpa)
    data.main(["download", str(tmp_path / "data"), "3-gram.pruned.3e-7"])
    assert (tmp_path / "data" / "lm" / "3-gram.pruned.3e-7.arpa.gz").read_bytes() == arpa
    assert files_under(tmp_path / "data") == ["lm", "lm/3-gram.pruned.3e-7.arpa.gz"]
    # no network: one line naming the address, exit status 1, nothing left behind
    monkeypatch.setattr(data, "OPENSLR_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(SystemExit) as stop:
        data.main(["download", str(tmp_path / "offline"), "4-gram"])
    message = str(stop.value.code)
    assert (
        message.startswith("error: could not download http://127.0.0.1:9/11/4-gram.arpa.gz")
        and "\n" not in message
    )
    assert files_under(tmp_path / "offline") == []


def test_unknown_download_name_is_one_error_line(tmp_path):
    with pytest.raises(SystemExit, match="error: unknown download 'train-clean-6'; choose from mini, lm, "):
        data.main(["download", str(tmp_path), "mini", "train-clean-6"])
    assert files_under(tmp_path) == []


CLIPS = {"sample-000000": "be careful said the stranger", "sample-000001": "then why", "sample-000002": ""}


def common_voice_release(root: Path, version: str) -> Path:
    """A small Common Voice English release as it unpacks: v1 (csv, clips beside it in a folder named
    after it; v1-nested: that folder inside another of its name, as some copies of v1 have it) or a
    later one (tsv, clips/); sample-000002 has no text and sample-000003 no audio. v1's other splits
    reuse the file names: cv-valid-train has a sample-000000 too, which must not be taken."""
    rows = [*CLIPS.items(), ("sample-000003", "lost clip")]
    table, clips = {
        "v1": (root / "cv-valid-dev.csv", root / "cv-valid-dev"),
        "v1-nested": (root / "cv-valid-dev.csv", root / "cv-valid-dev" / "cv-valid-dev"),
        "later": (root / "en" / "dev.tsv", root / "en" / "clips"),
    }[version]
    (root / "cv-valid-train").mkdir(parents=True)
    sf.write(root / "cv-valid-train" / "sample-000000.mp3", tone_speech("face", 16000), 16000)
    clips.mkdir(parents=True)
    for i, (uid, _) in enumerate(rows[:3]):
        sf.write(clips / f"{uid}.mp3", tone_speech("bad cab", 16000, seed=i), 16000)
    with open(table, "w", newline="") as f:
        if version.startswith("v1"):
            writer = csv.writer(f)
            writer.writerow(
                ["filename", "text", "up_votes", "down_votes", "age", "gender", "accent", "duration"]
            )
            writer.writerows([f"cv-valid-dev/{uid}.mp3", text, 1, 0, "", "", "", ""] for uid, text in rows)
        else:
            writer = csv.writer(f, delimiter="\t")
            writer.writerow(
                ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accents"]
            )
            writer.writerows(["c1", f"{uid}.mp3", text, 2, 0, "", "", ""] for uid, text in rows)
    (table.parent / f"other{table.suffix}").write_text("")  # another table, not chosen by default
    return root


@pytest.mark.parametrize(
    "version, packed", [("v1", True), ("v1", False), ("v1-nested", False), ("later", True)]
)
def test_common_voice_release_to_custom_layout_then_split_by_sentence(tmp_path, capsys, version, packed):
    source = common_voice_release(tmp_path / "cv_corpus", version)
    if packed:
        with tarfile.open(tmp_path / "cv_corpus.tar.gz", "w:gz") as tar:
            tar.add(source, arcname="./cv_corpus_v1")
        source = tmp_path / "cv_corpus.tar.gz"
    dest = tmp_path / "data" / "cv-dev"
    data.main(["common_voice", str(source), str(dest)])
    assert "1 of the 3 clips" in capsys.readouterr().out  # sample-000003's audio is missing
    assert files_under(dest) == [
        "audio", "audio/sample-000000.mp3", "audio/sample-000001.mp3",
        "transcriptions", "transcriptions/sample-000000.txt", "transcriptions/sample-000001.txt",
    ]  # fmt: skip
    original = next(tmp_path.glob("cv_corpus/**/cv-valid-dev/sample-000000.mp3"), None) or next(
        tmp_path.glob("cv_corpus/en/clips/sample-000000.mp3")
    )
    assert (dest / "audio" / "sample-000000.mp3").read_bytes() == original.read_bytes()  # not another split's
    utterances = data.read_data(str(dest))
    assert [(u.id, u.text) for u in utterances] == [
        (uid, CLIPS[uid]) for uid in ("sample-000000", "sample-000001")
    ]
    assert all(u.duration > 0.5 for u in utterances)  # real mp3s through the real loader
    split_by_text.main([str(dest), str(tmp_path / "data" / "cv"), "--val_fraction", "0.5"])
    sides = {uid: split_by_text.side(text, 0.5) for uid, text in CLIPS.items() if text}
    for uid, side in sides.items():
        assert (tmp_path / "data" / "cv" / side / "audio" / f"{uid}.flac").is_file()
    assert not [p for p in (tmp_path / "data").iterdir() if p.name.startswith(".")]  # no partial folder


def test_common_voice_without_the_table_names_what_is_there(tmp_path):
    source = common_voice_release(tmp_path / "cv_corpus", "v1")
    with pytest.raises(DataError, match=r"no train table \(.csv/.tsv\); found: cv-valid-dev, other"):
        data.convert_common_voice(source, tmp_path / "cv-dev", table="train")
    assert not (tmp_path / "cv-dev").exists()
    with pytest.raises(SystemExit, match="error: .*nowhere: not found"):
        data.main(["common_voice", str(tmp_path / "nowhere"), str(tmp_path / "cv-dev")])


def test_split_by_sentence_hashes_the_text_rules_it_was_made_with(tmp_path):
    """Spelling out titles (Mr -> mister) changed normalised text after Common Voice was split: the side
    is hashed from the text with titles as written, so the split stays as it was."""
    source = tmp_path / "cv-dev"
    (source / "audio").mkdir(parents=True)
    (source / "transcriptions").mkdir()
    sf.write(source / "audio" / "a.wav", np.zeros(8000, dtype=np.float32), 16000)
    (source / "transcriptions" / "a.txt").write_text("Is there a Mrs. Joshua?\n")
    old, new = "is there a mrs joshua", "is there a missus joshua"
    assert (split_by_text.side(old, 0.08), split_by_text.side(new, 0.08)) == ("val", "train")
    split_by_text.main([str(source), str(tmp_path / "cv"), "--val_fraction", "0.08"])
    assert (tmp_path / "cv" / "val" / "audio" / "a.flac").is_file()
    assert (tmp_path / "cv" / "val" / "transcriptions" / "a.txt").read_text() == new + "\n"  # text as trained
    (source / "transcriptions" / "a.txt").unlink()
    (source / "transcriptions").rmdir()
    split_by_text.main([str(source), str(tmp_path / "untranscribed")])  # nothing to split: no error
    assert not (tmp_path / "untranscribed").exists()
    run = python("recipes/split_by_text.py", str(tmp_path / "cv"), str(tmp_path / "x"))  # no cv/audio/
    assert run.returncode == 1 and len(run.stderr.splitlines()) == 1, run.stderr  # not a traceback
    assert run.stderr.startswith(f"error: {tmp_path / 'cv'}: no audio/ folder")
