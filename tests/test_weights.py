import functools
import hashlib
import http.server
import threading

import pytest

import inference


@pytest.fixture
def http_folder(tmp_path):
    """Serve tmp_path/served on 127.0.0.1; yields (folder, base_url)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_download_weights_checks_sha256(http_folder, tmp_path):
    served, url = http_folder
    payload = b"checkpoint bytes" * 1000
    (served / "model.pt").write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    dest = inference.download_weights(f"{url}/model.pt", tmp_path / "w" / "model.pt", sha256=good)
    assert dest.read_bytes() == payload
    (served / "model.pt").write_bytes(b"changed")  # already there with the right hash: not fetched again
    assert inference.download_weights(f"{url}/model.pt", dest, sha256=good).read_bytes() == payload
    with pytest.raises(RuntimeError, match="sha256 mismatch"):
        inference.download_weights(f"{url}/model.pt", tmp_path / "w" / "other.pt", sha256=good)
    assert not (tmp_path / "w" / "other.pt").exists() and not (tmp_path / "w" / "other.pt.part").exists()


def test_google_drive_links_go_through_gdown(monkeypatch, tmp_path):
    calls = []

    def fake_download(id, output, quiet):  # noqa: A002 - gdown's own argument name
        calls.append(id)
        open(output, "wb").write(b"weights")
        return output

    monkeypatch.setattr("gdown.download", fake_download)
    file_id = "1AbCdEfGhIjKlMnOpQrStUvWxYz012345"
    for link in (f"https://drive.google.com/file/d/{file_id}/view?usp=sharing", file_id):
        dest = inference.download_weights(link, tmp_path / f"{len(calls)}.pt")
        assert dest.read_bytes() == b"weights"
    assert calls == [file_id, file_id]
    assert inference._drive_id("https://example.com/model.pt") is None
