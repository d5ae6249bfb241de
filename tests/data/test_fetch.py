"""Raw files into place: mirror copy, verified download from a local HTTP server, the one offline error."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
import zipfile

import pytest

from tests.fixtures.raw import write_ml100k
from tests.fixtures.raw_formats import write_amazon, write_ml1m
from ur4rec.data import registry
from ur4rec.data.config import DatasetConfig, FetchConfig
from ur4rec.data.fetch import FetchError, download_all, fetch_dataset
from ur4rec.data.registry import Source

ML100K = DatasetConfig(format="ml-100k", raw_name="ml-100k")


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on localhost serving `tmp_path/www`; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def zip_ml100k(tmp_path, www):
    raw = write_ml100k(tmp_path / "src" / "ml-100k")
    archive = www / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("u.data", "u.item", "u.user", "u.genre"):
            zf.write(raw / name, f"ml-100k/{name}")
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mirror_copy_takes_only_the_category_files(tmp_path):
    mirror = tmp_path / "mirror"
    write_amazon(mirror / "amazon-2018-5core", category="Tiny_Things")
    write_amazon(mirror / "amazon-2018-5core", category="Other_Things")
    cfg = DatasetConfig(format="amazon2018", raw_name="amazon-2018-5core", category="Tiny_Things")
    dest = fetch_dataset("tiny", cfg, FetchConfig(mirrors=[str(tmp_path / "nowhere"), str(mirror)]), tmp_path / "raw")
    assert sorted(p.name for p in dest.iterdir()) == ["Tiny_Things_5.json", "meta_Tiny_Things.json.gz"]


def test_mirror_copy_accepts_gzipped_ratings(tmp_path):
    write_ml1m(tmp_path / "mirror" / "ml-1m", gzipped=True)
    cfg = DatasetConfig(format="ml-1m", raw_name="ml-1m")
    dest = fetch_dataset("ml-1m", cfg, FetchConfig(mirrors=[str(tmp_path / "mirror")]), tmp_path / "raw")
    assert sorted(p.name for p in dest.iterdir()) == ["movies.dat", "ratings.dat.gz", "users.dat"]


def test_incomplete_mirror_is_passed_over(tmp_path, monkeypatch):
    (tmp_path / "mirror" / "ml-100k").mkdir(parents=True)
    (tmp_path / "mirror" / "ml-100k" / "u.data").write_text("1\t1\t1\t1\n")
    monkeypatch.setattr(registry, "GROUPLENS", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(FetchError) as err:
        fetch_dataset("ml-100k", ML100K, FetchConfig(mirrors=[str(tmp_path / "mirror")]), tmp_path / "raw")
    message = str(err.value)
    assert "download failed" in message and "\n" not in message
    assert all(name in message for name in ("u.data", "u.item", "u.user"))
    assert f"Put them in {tmp_path / 'mirror' / 'ml-100k'}/ (or add a folder" in message
    assert not (tmp_path / "raw").exists()


def test_verified_download_unpacks_the_archive(tmp_path, http_root, monkeypatch):
    www, url = http_root
    _, digest = zip_ml100k(tmp_path, www)
    monkeypatch.setattr(registry, "GROUPLENS", url)
    monkeypatch.setitem(registry.FORMATS, "ml-100k", registry.RawFormat(
        "ml-100k", registry.FORMATS["ml-100k"].load, registry.FORMATS["ml-100k"].files,
        lambda cfg: registry._zip("ml-100k", digest, ["u.data", "u.item", "u.user"]),
    ))
    dest = fetch_dataset("ml-100k", ML100K, FetchConfig(mirrors=[]), tmp_path / "raw")
    assert sorted(p.name for p in dest.iterdir()) == ["u.data", "u.item", "u.user"]
    assert (dest / "u.data").read_bytes() == (tmp_path / "src" / "ml-100k" / "u.data").read_bytes()


def test_checksum_mismatch_leaves_nothing_behind(tmp_path, http_root):
    www, url = http_root
    zip_ml100k(tmp_path, www)
    with pytest.raises(FetchError, match="does not match the pinned"):
        download_all([Source(f"{url}/ml-100k.zip", "0" * 64, {"ml-100k/u.data": "u.data"})], tmp_path / "raw")
    assert not (tmp_path / "raw").exists()
    assert list(tmp_path.glob(".raw*")) == []


def test_unpinned_sources_need_explicit_consent(tmp_path):
    cfg = DatasetConfig(format="amazon2018", raw_name="amazon-2018-5core", category="Books")
    expected = r"no pinned sha256.*Expected files: Books_5\.json.*; meta_Books\.json\.gz"
    with pytest.raises(FetchError, match=expected) as err:
        fetch_dataset("amazon-books", cfg, FetchConfig(mirrors=["m"]), tmp_path / "raw")
    assert "fetch.allow_unpinned=true" in str(err.value) and "\n" not in str(err.value)


def test_generic_format_has_no_download(tmp_path):
    cfg = DatasetConfig(format="generic", raw_name="mine")
    with pytest.raises(FetchError, match=r"(?s)no official download.*interactions\.parquet or interactions\.csv"):
        fetch_dataset("mine", cfg, FetchConfig(mirrors=[]), tmp_path / "raw")
