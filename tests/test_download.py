"""download.py: resumable verified downloads (against a local HTTP server), mirrors, safe unpacking.

Nothing here touches the internet: the download table is patched to point at 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import random
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from housenum import download
from housenum.errors import DataError, NetworkError

FAST = download.DownloadSettings(retries=2, backoff_s=0.01, max_backoff_s=0.02, timeout_s=5,
                                 chunk_bytes=4096, probe_timeout_s=2)


# --------------------------------------------------------------------------------------------- helpers


def make_tar_gz(entries: dict[str, bytes], *, extra: list[tarfile.TarInfo] | None = None) -> bytes:
    """A .tar.gz holding `entries` (name -> bytes, folders implied) plus raw `extra` members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        folders = sorted({name.split("/")[0] for name in entries})
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    return buf.getvalue()


def svhn_split(top: str = "test", seed: int = 0, n_png: int = 3) -> dict[str, bytes]:
    # Incompressible and big enough for several 4 KiB chunks, so drops and resumes land mid-file.
    payload = random.Random(f"{top}{seed}").randbytes(40_000)
    files = {f"{top}/digitStruct.mat": payload, f"{top}/see_bboxes.m": b"% see bboxes\n"}
    files.update({f"{top}/{i}.png": payload[i * 97:i * 97 + 3000] for i in range(1, n_png + 1)})
    return files


class _State:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.mode = "normal"  # normal | ignore_range | drop_once | always_drop | wrong_bytes | error500
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.body_bytes_sent = 0
        self.drops = 0


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        state: _State = self.server.state  # type: ignore[attr-defined]
        rng = self.headers.get("Range")
        state.requests.append((self.command, self.path, rng))
        data = state.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404)
            return
        if state.mode == "error500" and not head:
            self.send_error(500)
            return
        if state.mode == "wrong_bytes":
            data = bytes(b ^ 0xFF for b in data)
        start = 0
        if rng and state.mode != "ignore_range" and not head:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head:
            return
        drop = state.mode == "always_drop" or (state.mode == "drop_once" and state.drops == 0)
        if drop:
            state.drops += 1
            body = body[: max(1, len(body) // 2)]
        # counted before writing: the client may finish reading (and the test check) before this thread
        # runs again after the write
        state.body_bytes_sent += len(body)
        self.wfile.write(body)
        self.wfile.flush()
        if drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = _State()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}/"  # type: ignore[attr-defined]
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_archive(monkeypatch, httpd, key: str, data: bytes, *, size: int | None = -1,
                  sha256: str | None | bool = True) -> download.Archive:
    """Put `data` on the server and point ARCHIVES[key] at it (size/sha256 default to the true ones)."""
    archive = download.ARCHIVES[key]
    httpd.state.files[archive.name] = data
    patched = dataclasses.replace(
        archive, url=httpd.base + archive.name,
        size=len(data) if size == -1 else size,
        sha256=hashlib.sha256(data).hexdigest() if sha256 is True else sha256 or None)
    monkeypatch.setitem(download.ARCHIVES, key, patched)
    return patched


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial things left in a folder tree (there must be none after a failure)."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.name.startswith((".tmp-", ".old-")) or p.name.endswith(".part"))


# --------------------------------------------------------------------------------------------- downloads


def test_complete_download_then_unpack(server, monkeypatch, tmp_path):
    data = make_tar_gz(svhn_split("test"))
    serve_archive(monkeypatch, server, "svhn-test", data)
    summary = download.fetch(["svhn-test"], tmp_path, progress=False, settings=FAST)
    assert summary["fetched"] == ["test.tar.gz"] and summary["extracted"] == ["test.tar.gz"]
    assert (tmp_path / "downloads" / "test.tar.gz").read_bytes() == data
    split = download.svhn_dir(tmp_path) / "test"
    assert sorted(p.name for p in split.iterdir()) == ["1.png", "2.png", "3.png", "digitStruct.mat", "see_bboxes.m"]
    assert leftovers(tmp_path) == []


def test_resume_requests_only_missing_bytes(server, monkeypatch, tmp_path):
    data = make_tar_gz(svhn_split("test"))
    archive = serve_archive(monkeypatch, server, "svhn-test", data)
    dest = tmp_path / archive.name
    (tmp_path / (archive.name + ".part")).write_bytes(data[:5000])
    state = download.download_file(archive.url, dest, size=archive.size, sha256=archive.sha256,
                                   settings=FAST, progress=False)
    assert state == "resumed" and dest.read_bytes() == data
    gets = [r for r in server.state.requests if r[0] == "GET"]
    assert gets == [("GET", "/test.tar.gz", "bytes=5000-")]
    assert server.state.body_bytes_sent == len(data) - 5000
    assert not (tmp_path / (archive.name + ".part")).exists()


def test_server_ignoring_range_restarts_cleanly(server, monkeypatch, tmp_path):
    data = make_tar_gz(svhn_split("test"))
    archive = serve_archive(monkeypatch, server, "svhn-test", data)
    server.state.mode = "ignore_range"
    (tmp_path / (archive.name + ".part")).write_bytes(b"x" * 3000)  # would corrupt the file if appended to
    download.download_file(archive.url, tmp_path / archive.name, size=archive.size, sha256=archive.sha256,
                           settings=FAST, progress=False)
    assert (tmp_path / archive.name).read_bytes() == data


def test_dropped_connection_is_retried_and_resumed(server, monkeypatch, tmp_path):
    data = make_tar_gz(svhn_split("test"))
    archive = serve_archive(monkeypatch, server, "svhn-test", data)
    server.state.mode = "drop_once"
    download.download_file(archive.url, tmp_path / archive.name, size=archive.size, sha256=archive.sha256,
                           settings=FAST, progress=False)
    assert (tmp_path / archive.name).read_bytes() == data
    gets = [r for r in server.state.requests if r[0] == "GET"]
    assert len(gets) == 2 and gets[0][2] is None
    assert gets[1][2] == f"bytes={len(data) // 2}-"  # the second attempt resumed where the first broke


def test_gives_up_after_retries_and_keeps_part_for_later(server, monkeypatch, tmp_path):
    data = make_tar_gz(svhn_split("test"))
    archive = serve_archive(monkeypatch, server, "svhn-test", data)
    server.state.mode = "error500"
    with pytest.raises(NetworkError, match=r"gave up on .*test\.tar\.gz after 3 attempts \(HTTP 500"):
        download.download_file(archive.url, tmp_path / archive.name, size=archive.size, settings=FAST,
                               progress=False)
    assert not (tmp_path / archive.name).exists()


@pytest.mark.parametrize("mode, size, match", [
    ("wrong_bytes", -1, r"SHA-256 .* expected"),
    ("normal", "bigger", r"server offers \d+ bytes .* expected \d+"),
])
def test_size_or_checksum_mismatch_keeps_nothing(server, monkeypatch, tmp_path, mode, size, match):
    data = make_tar_gz(svhn_split("test"))
    serve_archive(monkeypatch, server, "svhn-test", data, size=len(data) + 7 if size == "bigger" else -1)
    server.state.mode = mode
    with pytest.raises(DataError, match=match):
        download.fetch(["svhn-test"], tmp_path, progress=False, settings=FAST)
    assert list((tmp_path / "downloads").iterdir()) == []
    assert not (tmp_path / "svhn" / "test").exists() and leftovers(tmp_path) == []


def test_complete_data_needs_no_network(server, monkeypatch, tmp_path):
    data = make_tar_gz(svhn_split("test"))
    serve_archive(monkeypatch, server, "svhn-test", data)
    download.fetch(["svhn-test"], tmp_path, progress=False, settings=FAST)
    server.shutdown()
    server.server_close()
    again = download.fetch(["svhn-test"], tmp_path, progress=False, settings=FAST)
    assert again["skipped"] == ["test.tar.gz"] and again["fetched"] == again["extracted"] == []
    # Deleting the archive to save space keeps the unpacked folder valid, still offline.
    (tmp_path / "downloads" / "test.tar.gz").unlink()
    third = download.fetch(["svhn-test"], tmp_path, progress=False, settings=FAST)
    assert third["archives"][0]["fetch"] == "not needed" and third["skipped"] == ["test.tar.gz"]


def test_corrupt_download_is_removed(server, monkeypatch, tmp_path):
    data = make_tar_gz(svhn_split("test"))
    bad = data[: len(data) // 2]
    serve_archive(monkeypatch, server, "svhn-test", bad, sha256=None)  # size matches, no checksum known
    with pytest.raises(DataError, match=r"test\.tar\.gz: truncated or corrupt archive"):
        download.fetch(["svhn-test"], tmp_path, progress=False, settings=FAST)
    assert not (tmp_path / "downloads" / "test.tar.gz").exists()
    assert not (tmp_path / "svhn" / "test").exists() and leftovers(tmp_path) == []


def test_foreign_file_in_downloads_is_reported(server, monkeypatch, tmp_path):
    data = make_tar_gz(svhn_split("test"))
    serve_archive(monkeypatch, server, "svhn-test", data)
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "test.tar.gz").write_bytes(b"not the official file")
    with pytest.raises(DataError, match=r"is 21 bytes, the official test\.tar\.gz is \d+"):
        download.fetch(["svhn-test"], tmp_path, progress=False, settings=FAST)


def test_check_online(server, monkeypatch):
    data = make_tar_gz(svhn_split("test"))
    serve_archive(monkeypatch, server, "svhn-test", data)
    assert download.check_online(timeout=2) is None
    port = closed_port()
    monkeypatch.setitem(download.ARCHIVES, "svhn-test", dataclasses.replace(
        download.ARCHIVES["svhn-test"], url=f"http://127.0.0.1:{port}/test.tar.gz"))
    assert download.check_online(timeout=2) == f"cannot reach 127.0.0.1:{port} (Connection refused)"


def test_no_network_is_one_line_and_exit_1(repo_root, tmp_path):
    port = closed_port()
    code = (
        "import dataclasses, sys\n"
        "from housenum import download\n"
        "for key, a in list(download.ARCHIVES.items()):\n"
        f"    download.ARCHIVES[key] = dataclasses.replace(a, url='http://127.0.0.1:{port}/' + a.name)\n"
        "import download_and_extract as script\n"
        "from housenum.cli import run\n"
        "run(script.main, sys.argv[1:])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, "--data-dir", str(tmp_path), "--no-progress"],
                          cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: cannot reach 127.0.0.1:{port} (Connection refused); offline? use --mirror DIR (a folder "
        "with the archives) or --synthetic N (generate N synthetic numbers)"]
    assert not (tmp_path / "downloads").exists() or list((tmp_path / "downloads").iterdir()) == []


def test_unknown_dataset_is_named():
    with pytest.raises(DataError, match=r"unknown dataset 'svhn-trian'; expected one of: svhn, notmnist"):
        download.resolve_datasets(["svhn-test,svhn-trian"])
    assert [a.key for a in download.resolve_datasets(["notmnist", "svhn-test"])] == [
        "svhn-test", "notmnist-small", "notmnist-large"]


def test_script_help_shows_defaults(repo_root):
    proc = subprocess.run([sys.executable, "download_and_extract.py", "--help"], cwd=repo_root,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "--mirror ../shared/data" in proc.stdout and "(default: data)" in proc.stdout
    assert "/work/" not in proc.stdout and "(default: None)" not in proc.stdout  # relative examples, no doubled defaults


# --------------------------------------------------------------------------------------------- mirror


@pytest.fixture(scope="module")
def real_mirror_run(mirror_dir, notmnist_mirror, tmp_path_factory):
    """One unpacking of the real mirror, shared by the tests below (notMNIST_small is 10,000 files)."""
    data = tmp_path_factory.mktemp("mirror-run")
    wanted = ["svhn-test", "svhn-extra", "notmnist"]  # notmnist: small and large; the mirror lacks large
    return data, wanted, download.fetch(wanted, data, mirror=mirror_dir, progress=False)


def test_mirror_unpacks_real_archives(real_mirror_run):
    data, _, summary = real_mirror_run
    assert summary["extracted"] == ["test.tar.gz", "extra.tar.gz", "notMNIST_small.tar.gz"]
    svhn = download.svhn_dir(data)
    for split in ("test", "extra"):
        names = {p.name for p in (svhn / split).iterdir()}
        assert {"1.png", "2.png", "3.png", "digitStruct.mat", "see_bboxes.m"} <= names
    small = download.notmnist_dir(data) / "notMNIST_small"
    assert sorted(p.name for p in small.iterdir()) == list("ABCDEFGHIJ")
    assert sum(1 for _ in small.rglob("*.png")) == 10_000
    assert not (data / "downloads").exists()  # mirror archives are read in place, not copied
    # The shared mirror has no notMNIST_large: named, explained, not fatal.
    assert summary["missing"] == ["notMNIST_large.tar.gz"]
    assert "build its splits from notMNIST_small" in summary["notes"][0]


def test_mirror_rerun_skips(real_mirror_run, mirror_dir):
    data, wanted, _ = real_mirror_run
    again = download.fetch(wanted, data, mirror=mirror_dir, progress=False)
    assert again["extracted"] == [] and again["skipped"] == ["test.tar.gz", "extra.tar.gz", "notMNIST_small.tar.gz"]


def test_mirror_lacking_the_only_requested_notmnist_fails(mirror_dir, tmp_path):
    with pytest.raises(DataError, match=r"--mirror: notMNIST_large\.tar\.gz not found \(searched .*notmnist\)"):
        download.fetch(["notmnist-large"], tmp_path, mirror=mirror_dir, progress=False)


def test_mirror_svhn_subfolder_also_works(svhn_mirror, tmp_path):
    summary = download.fetch(["svhn-extra"], tmp_path, mirror=svhn_mirror, progress=False)
    assert summary["archives"][0]["path"] == str(svhn_mirror / "extra.tar.gz")
    assert (download.svhn_dir(tmp_path) / "extra" / "digitStruct.mat").is_file()


def test_mirror_missing_archive_fails_before_unpacking_anything(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "svhn").mkdir(parents=True)
    (mirror / "svhn" / "test.tar.gz").write_bytes(make_tar_gz(svhn_split("test")))
    with pytest.raises(DataError, match=rf"train\.tar\.gz not found \(searched {mirror}, {mirror}/svhn, {mirror}/notmnist\)"):
        download.fetch(["svhn-test", "svhn-train"], tmp_path / "data", mirror=mirror, progress=False)
    assert not (tmp_path / "data" / "svhn").exists()
    with pytest.raises(DataError, match=r"--mirror: .*nowhere is not a folder"):
        download.fetch(["svhn-test"], tmp_path / "data", mirror=tmp_path / "nowhere", progress=False)


def test_changed_mirror_archive_is_unpacked_again(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "test.tar.gz").write_bytes(make_tar_gz(svhn_split("test", seed=1, n_png=3)))
    data = tmp_path / "data"
    download.fetch(["svhn-test"], data, mirror=mirror, progress=False)
    (mirror / "test.tar.gz").write_bytes(make_tar_gz(svhn_split("test", seed=2, n_png=1)))
    summary = download.fetch(["svhn-test"], data, mirror=mirror, progress=False)
    assert summary["extracted"] == ["test.tar.gz"]
    assert sorted(p.name for p in (data / "svhn" / "test").iterdir()) == ["1.png", "digitStruct.mat", "see_bboxes.m"]
    assert leftovers(data) == []


# --------------------------------------------------------------------------------------------- unsafe and broken archives


def _member(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info


@pytest.mark.parametrize("member, why", [
    (_member("test/../../evil.txt", tarfile.REGTYPE), "'..' component"),
    (_member("/tmp/housenum-evil.txt", tarfile.REGTYPE), "absolute path"),
    (_member("test/link", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
    (_member("test/hard", tarfile.LNKTYPE, "test/digitStruct.mat"), "hard link"),
    (_member("test/null", tarfile.CHRTYPE), "device or FIFO"),
    (_member("test/pipe", tarfile.FIFOTYPE), "device or FIFO"),
    (_member("elsewhere.txt", tarfile.REGTYPE), "outside the expected top folder test/"),
])
def test_unsafe_members_are_rejected_and_nothing_extracted(tmp_path, member, why):
    archive_path = tmp_path / "test.tar.gz"
    archive_path.write_bytes(make_tar_gz(svhn_split("test"), extra=[member]))
    data = tmp_path / "data"
    with pytest.raises(DataError, match=rf"unsafe archive member {member.name!r} .*{why}"):
        download.extract(download.ARCHIVES["svhn-test"], archive_path, data, origin="mirror", progress=False)
    assert not (data / "svhn" / "test").exists() and leftovers(data) == []
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/housenum-evil.txt").exists()


@pytest.mark.parametrize("cut", ["half", "trailer"])
def test_truncated_mirror_archive_is_named_and_left_alone(tmp_path, cut):
    good = make_tar_gz(svhn_split("test"))
    # "trailer" keeps every tar block but cuts the gzip CRC/length: only reading to the end catches it.
    bad = good[: len(good) // 2] if cut == "half" else good[:-4]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "test.tar.gz").write_bytes(bad)
    data = tmp_path / "data"
    with pytest.raises(DataError, match=rf"{mirror}/test\.tar\.gz: truncated or corrupt archive"):
        download.fetch(["svhn-test"], data, mirror=mirror, progress=False)
    assert (mirror / "test.tar.gz").read_bytes() == bad  # not ours: left as it was
    assert not (data / "svhn" / "test").exists() and leftovers(data) == []


def test_not_a_gzip_file_is_named(tmp_path):
    path = tmp_path / "test.tar.gz"
    path.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(DataError, match=r"test\.tar\.gz: truncated or corrupt archive"):
        download.extract(download.ARCHIVES["svhn-test"], path, tmp_path / "data", progress=False)


def test_wrong_archive_layout_is_named(tmp_path):
    path = tmp_path / "test.tar.gz"
    path.write_bytes(make_tar_gz({"test/1.png": b"png"}))
    with pytest.raises(DataError, match=r"test/ lacks digitStruct\.mat"):
        download.extract(download.ARCHIVES["svhn-test"], path, tmp_path / "data", progress=False)
    assert leftovers(tmp_path / "data") == [] and not (tmp_path / "data" / "svhn" / "test").exists()


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_interrupted_unpacking_leaves_nothing_and_rerun_completes(tmp_path, monkeypatch, error):
    path = tmp_path / "test.tar.gz"
    path.write_bytes(make_tar_gz(svhn_split("test")))
    data = tmp_path / "data"
    real = download._extract_member
    calls = {"n": 0}

    def crash_midway(tar, member, root):
        calls["n"] += 1
        if calls["n"] == 3:
            raise error
        real(tar, member, root)

    monkeypatch.setattr(download, "_extract_member", crash_midway)
    with pytest.raises(type(error)):
        download.extract(download.ARCHIVES["svhn-test"], path, data, progress=False)
    assert not (data / "svhn" / "test").exists() and leftovers(data) == []
    assert not (data / "svhn" / ".test.extracted.json").exists()
    monkeypatch.setattr(download, "_extract_member", real)
    assert download.extract(download.ARCHIVES["svhn-test"], path, data, progress=False) == "extracted"
    assert (data / "svhn" / "test" / "3.png").is_file()
    marker = json.loads((data / "svhn" / ".test.extracted.json").read_text())
    assert marker["size"] == path.stat().st_size and marker["archive"] == "test.tar.gz"


def test_stale_temporary_folders_from_a_killed_run_are_cleaned(tmp_path):
    path = tmp_path / "test.tar.gz"
    path.write_bytes(make_tar_gz(svhn_split("test")))
    data = tmp_path / "data"
    (data / "svhn" / ".tmp-test-killed" / "test").mkdir(parents=True)
    download.extract(download.ARCHIVES["svhn-test"], path, data, progress=False)
    assert leftovers(data) == []


# --------------------------------------------------------------------------------------------- --synthetic (fake generator)


class _FakeSynthetic:
    """Stands in for housenum.synthetic with the same three names, to test the plumbing alone."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def split_sizes(self, n: int) -> dict[str, int]:
        return {"train": n - 2 * (n // 4), "test": n // 4, "extra": n // 4}

    fail_after: int | None = None  # raise KeyboardInterrupt after writing this many archives (an interruption)

    def write_svhn_archives(self, out_dir, sizes, seed=0, progress=True, resume=False):
        self.calls.append(("svhn", dict(sizes), seed, resume))
        for k, (split, count) in enumerate(sizes.items()):
            if self.fail_after is not None and k == self.fail_after:
                raise KeyboardInterrupt
            if resume and Path(out_dir, f"{split}.tar.gz").is_file():
                continue
            Path(out_dir, f"{split}.tar.gz").write_bytes(make_tar_gz(svhn_split(split, seed, n_png=count)))

    def write_notmnist_archive(self, out_dir, per_class, seed=0):
        self.calls.append(("notmnist", per_class, seed))
        files = {f"notMNIST_small/{c}/{i}.png": bytes([i]) for c in "ABCDEFGHIJ" for i in range(per_class)}
        Path(out_dir, "notMNIST_small.tar.gz").write_bytes(make_tar_gz(files))


@pytest.fixture
def fake_synthetic(monkeypatch):
    import housenum

    fake = _FakeSynthetic()
    monkeypatch.setitem(sys.modules, "housenum.synthetic", fake)
    monkeypatch.setattr(housenum, "synthetic", fake, raising=False)
    return fake


def test_synthetic_generates_unpacks_and_skips_when_unchanged(fake_synthetic, tmp_path):
    summary = download.fetch(["svhn", "notmnist"], tmp_path, synthetic=8, seed=3, synthetic_letters=3,
                             progress=False)
    assert fake_synthetic.calls == [("svhn", {"train": 4, "test": 2, "extra": 2}, 3, True), ("notmnist", 3, 3)]
    assert summary["fetched"] == ["train.tar.gz", "test.tar.gz", "extra.tar.gz", "notMNIST_small.tar.gz"]
    assert summary["missing"] == ["notMNIST_large.tar.gz"]
    assert sorted(p.name for p in (tmp_path / "svhn" / "train").glob("*.png")) == ["1.png", "2.png", "3.png", "4.png"]
    assert (tmp_path / "notmnist" / "notMNIST_small" / "J" / "2.png").is_file()
    again = download.fetch(["svhn", "notmnist"], tmp_path, synthetic=8, seed=3, synthetic_letters=3,
                           progress=False)
    assert len(fake_synthetic.calls) == 2 and again["extracted"] == [] and len(again["skipped"]) == 4
    # Changing only the letters per class remakes only notMNIST.
    letters = download.fetch(["svhn", "notmnist"], tmp_path, synthetic=8, seed=3, synthetic_letters=4,
                             progress=False)
    assert fake_synthetic.calls[2:] == [("notmnist", 4, 3)] and letters["fetched"] == ["notMNIST_small.tar.gz"]
    # A new seed regenerates and unpacks again; an official-looking run then refuses the synthetic files.
    third = download.fetch(["svhn-test"], tmp_path, synthetic=8, seed=4, progress=False)
    assert third["extracted"] == ["test.tar.gz"] and leftovers(tmp_path) == []
    # train/extra from seed 3 are still recognised as synthetic, so seed 4 may replace them.
    fourth = download.fetch(["svhn"], tmp_path, synthetic=8, seed=4, progress=False)
    assert fourth["fetched"] == ["train.tar.gz", "test.tar.gz", "extra.tar.gz"]
    assert fourth["extracted"] == ["train.tar.gz", "test.tar.gz", "extra.tar.gz"]
    with pytest.raises(DataError, match=r"not the official archive .*--synthetic"):
        download.fetch(["svhn-test"], tmp_path, progress=False, settings=FAST)


def test_interrupted_synthetic_generation_resumes_and_old_work_folders_are_removed(fake_synthetic, tmp_path):
    downloads = tmp_path / "downloads"
    stale = [downloads / ".tmp-synthetic-abc123", downloads / ".partial-synthetic-0123456789ab"]
    for folder in stale:  # an older kind's and other settings' left-overs
        folder.mkdir(parents=True)
        (folder / "train.tar.gz").write_bytes(b"old")
    fake_synthetic.fail_after = 1  # train written, then the run is stopped
    with pytest.raises(KeyboardInterrupt):
        download.fetch(["svhn"], tmp_path, synthetic=8, seed=3, progress=False)
    assert not any(p.exists() for p in stale)
    (work,) = downloads.glob(".partial-synthetic-*")
    assert [p.name for p in work.iterdir()] == ["train.tar.gz"] and not (downloads / "train.tar.gz").exists()
    fake_synthetic.fail_after = None
    summary = download.fetch(["svhn"], tmp_path, synthetic=8, seed=3, progress=False)  # the same settings again
    assert summary["fetched"] == ["train.tar.gz", "test.tar.gz", "extra.tar.gz"]
    assert fake_synthetic.calls[-1][3] is True and not work.exists() and leftovers(tmp_path) == []
    assert sorted(p.name for p in (tmp_path / "svhn" / "train").glob("*.png")) == ["1.png", "2.png", "3.png", "4.png"]


def test_synthetic_never_overwrites_a_download(fake_synthetic, tmp_path):
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "test.tar.gz").write_bytes(b"a real download")
    with pytest.raises(DataError, match=r"test\.tar\.gz exists and was not written by --synthetic"):
        download.fetch(["svhn-test"], tmp_path, synthetic=8, progress=False)
    assert (tmp_path / "downloads" / "test.tar.gz").read_bytes() == b"a real download"
    assert leftovers(tmp_path) == []


def test_synthetic_svhn_with_notmnist_from_mirror(fake_synthetic, tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "notmnist").mkdir(parents=True)
    letters = {f"notMNIST_small/{c}/m.png": b"mirror" for c in "ABCDEFGHIJ"}
    (mirror / "notmnist" / "notMNIST_small.tar.gz").write_bytes(make_tar_gz(letters))
    data = tmp_path / "data"
    summary = download.fetch(["svhn-test", "notmnist"], data, synthetic=8, mirror=mirror, progress=False)
    assert [row["source"] for row in summary["archives"]] == ["synthetic", "mirror"]
    assert [c[0] for c in fake_synthetic.calls] == ["svhn"]
    assert (data / "notmnist" / "notMNIST_small" / "J" / "m.png").read_bytes() == b"mirror"
    assert summary["missing"] == ["notMNIST_large.tar.gz"]


def test_long_numbers_are_generated_and_recorded(tmp_path):
    """--long-numbers: that share of the numbers has 6..8 digits; changing it regenerates, repeating it skips."""
    pytest.importorskip("housenum.synthetic")
    from housenum.digitstruct import read_digitstruct

    summary = download.fetch(["svhn-test"], tmp_path, synthetic=16, long_share=1.0, progress=False)
    assert summary["fetched"] == ["test.tar.gz"]
    ds = read_digitstruct(download.svhn_dir(tmp_path) / "test" / "digitStruct.mat")
    assert len(ds) == 4 and all(6 <= n <= 8 for n in ds.lengths())
    again = download.fetch(["svhn-test"], tmp_path, synthetic=16, long_share=1.0, progress=False)
    assert again["fetched"] == []
    plain = download.fetch(["svhn-test"], tmp_path, synthetic=16, progress=False)
    assert plain["fetched"] == ["test.tar.gz"]
    assert all(n <= 5 for n in read_digitstruct(download.svhn_dir(tmp_path) / "test" / "digitStruct.mat").lengths())
    with pytest.raises(DataError, match="--long-numbers: only with --synthetic"):
        download.fetch(["svhn-test"], tmp_path, long_share=0.5, progress=False)


@pytest.mark.parametrize("share, flag", [("thin_share", "--thin-numbers"), ("hand_share", "--hand-numbers")])
def test_lettering_shares_are_recorded_and_change_the_data(tmp_path, share, flag):
    """--thin-numbers / --hand-numbers: a new setting regenerates (other pixels, the same labels), repeating
    it skips."""
    pytest.importorskip("housenum.synthetic")
    from housenum.digitstruct import read_digitstruct

    plain = download.fetch(["svhn-test"], tmp_path, synthetic=16, progress=False)
    folder = download.svhn_dir(tmp_path) / "test"
    before = [(folder / f"{i}.png").read_bytes() for i in (1, 2, 3, 4)]
    labels = [list(r[1][:, 0]) for r in map(read_digitstruct(folder / "digitStruct.mat").record, range(4))]
    styled = download.fetch(["svhn-test"], tmp_path, synthetic=16, progress=False, **{share: 1.0})
    assert plain["fetched"] == styled["fetched"] == ["test.tar.gz"]
    record = json.loads((download.downloads_dir(tmp_path) / ".synthetic.json").read_text())
    assert record["archives"]["test.tar.gz"]["params"] == {"n": 16, "seed": 0, share: 1.0}
    assert all((folder / f"{i}.png").read_bytes() != b for i, b in zip((1, 2, 3, 4), before))
    assert [list(r[1][:, 0]) for r in map(read_digitstruct(folder / "digitStruct.mat").record, range(4))] == labels
    assert download.fetch(["svhn-test"], tmp_path, synthetic=16, progress=False, **{share: 1.0})["fetched"] == []
    with pytest.raises(DataError, match=f"{flag}: only with --synthetic"):
        download.fetch(["svhn-test"], tmp_path, progress=False, **{share: 0.5})
    with pytest.raises(DataError, match=f"{flag}: expected a share 0..1"):
        download.fetch(["svhn-test"], tmp_path, synthetic=16, progress=False, **{share: 1.5})


def test_synthetic_end_to_end_with_the_real_generator(tmp_path):
    pytest.importorskip("housenum.synthetic")
    summary = download.fetch(["svhn-test", "notmnist"], tmp_path, synthetic=4, seed=0, synthetic_letters=2,
                             progress=False)
    assert summary["fetched"] == ["test.tar.gz", "notMNIST_small.tar.gz"]
    assert summary["missing"] == ["notMNIST_large.tar.gz"]
    test = download.svhn_dir(tmp_path) / "test"
    assert (test / "digitStruct.mat").is_file() and (test / "see_bboxes.m").is_file()
    assert (test / "1.png").is_file()
    small = download.notmnist_dir(tmp_path) / "notMNIST_small"
    assert sorted(p.name for p in small.iterdir()) == list("ABCDEFGHIJ")
    assert not (tmp_path / "downloads" / "train.tar.gz").exists()  # generated, but not asked for
    again = download.fetch(["svhn-test", "notmnist"], tmp_path, synthetic=4, seed=0, synthetic_letters=2,
                           progress=False)
    assert again["fetched"] == again["extracted"] == [] and leftovers(tmp_path) == []
