import hashlib
import os

import pytest

import download


def test_download_checks_sha256_and_caches_by_url(http_folder, tmp_path):
    served, url = http_folder
    payload = b"checkpoint bytes" * 1000
    (served / "model.pt").write_bytes(payload)
    (served / "other.pt").write_bytes(b"changed")
    good = hashlib.sha256(payload).hexdigest()
    dest = download.download(f"{url}/model.pt", tmp_path / "w", checksum=f"sha256:{good}")
    assert dest.read_bytes() == payload and dest.name == "model.pt"
    (served / "model.pt").write_bytes(b"changed")  # already there, verified: not fetched again
    assert (
        download.download(f"{url}/model.pt", tmp_path / "w", checksum=f"sha256:{good}").read_bytes()
        == payload
    )
    with pytest.raises(RuntimeError, match="sha256 mismatch"):
        download.download(f"{url}/other.pt", tmp_path / "w", checksum=f"sha256:{good}")
    assert sorted(p.name for p in (tmp_path / "w").rglob("*") if p.is_file()) == [
        "model.pt"
    ]  # no partial file


def test_google_drive_links_go_through_gdown(monkeypatch, tmp_path):
    calls = []

    def fake_download(id, output, quiet):  # noqa: A002 - gdown's own argument name
        calls.append(id)
        path = output + "model.pt" if output.endswith(os.sep) else output  # a folder: the file's Drive name
        open(path, "wb").write(b"weights")
        return path

    monkeypatch.setattr("gdown.download", fake_download)
    file_id = "1AbCdEfGhIjKlMnOpQrStUvWxYz012345"
    for i, link in enumerate((f"https://drive.google.com/file/d/{file_id}/view?usp=sharing", file_id)):
        dest = download.download(link, tmp_path / str(i))
        assert dest.read_bytes() == b"weights" and dest.name == "model.pt"
    assert calls == [file_id, file_id]
    assert download.parse_link("https://example.com/model.pt")[0] == "url"
