"""Raw files into `data/raw/<name>/`: copied from a local mirror, else downloaded with sha256 verification.

Order: (1) the first `fetch.mirrors` entry holding `<mirror>/<raw_name>/` with every required file (only the
files the format needs are copied: for Amazon, one category of a shared folder); (2) the official download,
verified against the pinned sha256; offline, one error names the files expected and where to put them.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from ur4rec.data.config import DatasetConfig, FetchConfig
from ur4rec.data.registry import FileSpec, Source, missing_files, raw_format
from ur4rec.errors import UserError
from ur4rec.io import atomic_dir

CHUNK = 1 << 20


class FetchError(UserError, RuntimeError):
    """Raw files could not be found locally nor downloaded; the message says what to put where."""


def fetch_dataset(name: str, dataset: DatasetConfig, fetch: FetchConfig, dest: Path) -> Path:
    """Fill `dest` with the raw files of `dataset`; returns `dest`."""
    specs = raw_format(dataset.format).files(dataset)
    for mirror in fetch.mirrors:
        folder = Path(mirror) / dataset.raw_name
        if folder.is_dir() and not missing_files(folder, dataset):
            copy_files(folder, specs, dest)
            print(f"{name}: copied {_listing(dest)} from {folder}")
            return dest
    sources = raw_format(dataset.format).sources(dataset)
    if not sources:
        raise FetchError(offline_message(name, dataset, fetch, specs, "format has no official download"))
    unpinned = [s.url for s in sources if s.sha256 is None]
    if unpinned and not fetch.allow_unpinned:
        raise FetchError(
            offline_message(name, dataset, fetch, specs, f"no pinned sha256 for {unpinned}")
            + " To download without checksum verification anyway, set -S fetch.allow_unpinned=true."
        )
    try:
        download_all(sources, dest)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        why = f"download failed: {' '.join(str(exc).split())}"
        raise FetchError(offline_message(name, dataset, fetch, specs, why)) from exc
    print(f"{name}: downloaded {_listing(dest)}")
    return dest


def copy_files(folder: Path, specs: list[FileSpec], dest: Path) -> None:
    """Copy the first present name of each spec into `dest`, replacing it whole."""
    with atomic_dir(dest) as tmp:
        for spec in specs:
            found = spec.find(folder)
            if found is not None:
                shutil.copyfile(found, tmp / found.name)


def download_all(sources: list[Source], dest: Path) -> None:
    """Download every source into a fresh `dest`; nothing lands there unless all verify."""
    with atomic_dir(dest) as tmp:
        for source in sources:
            with tempfile.TemporaryDirectory(dir=tmp) as scratch:
                archive = Path(scratch) / source.filename
                digest = download(source.url, archive)
                if source.sha256 is not None and digest != source.sha256:
                    raise FetchError(f"{source.url}: sha256 {digest} does not match the pinned {source.sha256}")
                if source.members:
                    extract(archive, source.members, tmp)
                else:
                    shutil.move(archive, tmp / source.filename)


def download(url: str, path: Path, timeout: float = 60) -> str:
    """Stream `url` into `path` with a progress bar; returns the sha256 hex digest."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout) as response, open(path, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=path.name) as bar:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    return digest.hexdigest()


def extract(archive: Path, members: dict[str, str], dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for member, filename in members.items():
            with zf.open(member) as src, open(dest / filename, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)


def offline_message(name: str, dataset: DatasetConfig, fetch: FetchConfig, specs: list[FileSpec], why: str) -> str:
    """The one error a user sees when raw files are nowhere: what is expected, and where to put it (one line)."""
    wanted = "; ".join(spec.describe() for spec in specs)
    places = " or ".join(f"{Path(m) / dataset.raw_name}/" for m in fetch.mirrors)
    where = f"{places} (or add a folder to fetch.mirrors)" if places else (
        f"<mirror>/{dataset.raw_name}/ for a folder <mirror> you add to fetch.mirrors"
    )
    return (
        f"dataset {name!r} (format {dataset.format}): raw files not found locally and not downloaded ({why}). "
        f"Expected files: {wanted}. Put them in {where}, then rerun."
    )


def _listing(folder: Path) -> str:
    return ", ".join(sorted(p.name for p in folder.iterdir()))
