"""Downloads: one helper that fetches a web address or a Google Drive file once, checks it and keeps
it in a cache keyed by the address; links are recognised by `parse_link`, archives unpacked by
`extract`.
"""

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlparse

CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "quartznet-ctc"


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


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def is_archive(path: str | Path) -> bool:
    return Path(path).is_file() and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))


CONTENT_CHECKS = {"checkpoint": zipfile.is_zipfile, "archive": is_archive}  # torch.save writes a zip


def content_problem(path: Path, expect: str | None = None) -> str | None:
    """What is wrong with a downloaded file, or None: a web page served in its place (a server's
    error or sign-in page) is never right; `expect` ("checkpoint", "archive") checks more."""
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "a web page (HTML), not the file"
    if expect and not CONTENT_CHECKS[expect](path):
        return f"not a {expect}"
    return None


def download(
    link: str, root: str | Path = CACHE_DIR, checksum: str | None = None, expect: str | None = None
) -> Path:
    """A web address or Google Drive file (link or id) -> ROOT/<hash of the address>/<its file name>.

    The file is fetched into a temporary file with a progress bar, checked against `checksum`
    ("sha256:<hex>" or "md5:<hex>") and its content (content_problem) and only then moved into the
    cache, so a cached file is a verified one and is returned without fetching again; a cached file
    that fails the content check is fetched again. Failures raise RuntimeError naming the link."""
    kind, value = parse_link(link)
    if kind in ("local", "folder"):
        raise ValueError(f"{link}: not a web address or a Google Drive file")
    folder = Path(root) / hashlib.sha256(value.encode()).hexdigest()[:16]
    if cached := [p for p in folder.glob("*") if p.is_file()]:
        if not (problem := content_problem(cached[0], expect)):
            return cached[0]
        print(f"warning: the cached {cached[0]} (from {link}) is {problem}; downloading it again")
        cached[0].unlink()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        part = _fetch_checked(link, kind, value, folder, checksum, expect)
    except BaseException:  # a failed or interrupted download leaves no empty entry behind
        if not any(folder.iterdir()):
            folder.rmdir()
        raise
    return part


def _fetch_checked(
    link: str, kind: str, value: str, folder: Path, checksum: str | None, expect: str | None
) -> Path:
    """download()'s fetch into FOLDER, through a temporary file that only a checked download leaves.
    A temporary folder rather than cli.atomic_path: gdown names the file only as it fetches it."""
    with tempfile.TemporaryDirectory(dir=folder, prefix=".part-") as tmp:
        if kind == "url":
            import torch

            part = Path(tmp) / (Path(urlparse(value).path).name or "download")
            try:
                torch.hub.download_url_to_file(value, str(part), progress=True)
            except OSError as e:  # URLError and HTTPError included
                raise RuntimeError(f"could not download {link}: {getattr(e, 'reason', e)}") from e
        else:  # gdown names the file as it is named on Drive
            import gdown

            if not (got := gdown.download(id=value, output=tmp + os.sep, quiet=False)):
                raise RuntimeError(f"could not download {link}: is it shared as 'anyone with the link'?")
            part = Path(got)
        # the content first: a server's error page is named as such, not as a checksum mismatch
        if problem := content_problem(part, expect):
            raise RuntimeError(f"{link}: the download is {problem}; check the address (nothing was kept)")
        if checksum:
            algorithm, expected = checksum.split(":", 1)
            if file_digest(part, algorithm) != expected.lower():
                raise RuntimeError(
                    f"{link}: {algorithm} mismatch (expected {expected}); the download was removed"
                )
        os.replace(part, folder / part.name)
    return folder / part.name


def download_drive_folder(drive_id: str, root: str | Path = CACHE_DIR) -> Path | None:
    """A public Google Drive folder -> ROOT/<hash of its id>/ (downloaded once); None, with gdown's
    reason printed, when the id is not such a folder."""
    import gdown

    dest = Path(root) / hashlib.sha256(drive_id.encode()).hexdigest()[:16]
    if (dest / ".complete").exists():
        return dest
    try:
        files = gdown.download_folder(id=drive_id, output=str(dest), quiet=False)
    except Exception as e:
        return print(f"gdown: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}")
    if files and int(gdown.__version__.split(".")[0]) < 6 and len(files) >= 50:
        print("warning: gdown < 6 downloads at most 50 files per folder; run `pip install -U gdown`")
    if files and all(Path(f).is_file() and not content_problem(Path(f)) for f in files):
        (dest / ".complete").touch()  # only now: a failed or partial download is fetched again
        return dest


def extract(archive: str | Path, dest: str | Path) -> Path:
    """A zip or tar (.gz, .bz2, .xz) archive, recognised by its content -> its files under dest."""
    if zipfile.is_zipfile(archive):
        archive_format = "zip"  # zipfile drops '..' and absolute parts of member names
    elif tarfile.is_tarfile(archive):
        archive_format = "tar"
    else:
        raise ValueError(f"{Path(archive).name} is not a zip or tar(.gz) archive")
    kwargs = dict(filter="data") if archive_format == "tar" else {}
    shutil.unpack_archive(archive, dest, format=archive_format, **kwargs)
    return Path(dest)
