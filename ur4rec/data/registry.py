"""Raw formats by name (`dataset.<name>.format`): which files each needs, where to download them, how to load.

A `FileSpec` lists acceptable names for one file (e.g. plain or gzipped); the first present is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ur4rec.config import ParamsError
from ur4rec.data import amazon, generic, movielens, steam
from ur4rec.data.config import DatasetConfig
from ur4rec.data.schema import BadLines, RawDataset

GROUPLENS = "https://files.grouplens.org/datasets/movielens"
UCSD_AMAZON = "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2"
UCSD_STEAM = "https://mcauleylab.ucsd.edu/public_datasets/data/steam"


@dataclass(frozen=True)
class FileSpec:
    names: tuple[str, ...]
    required: bool = True

    def find(self, folder: Path) -> Path | None:
        return next((folder / n for n in self.names if (folder / n).is_file()), None)

    def describe(self) -> str:
        return " or ".join(self.names) + ("" if self.required else " (optional)")


@dataclass(frozen=True)
class Source:
    """One official download. A zip is unpacked: `members` maps archive member -> file name kept."""

    url: str
    sha256: str | None
    members: dict[str, str] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class RawFormat:
    name: str
    load: Callable[[Path, DatasetConfig, BadLines], RawDataset]
    files: Callable[[DatasetConfig], list[FileSpec]]
    sources: Callable[[DatasetConfig], list[Source]]


def _zip(name: str, sha256: str, files: list[str]) -> list[Source]:
    return [Source(f"{GROUPLENS}/{name}.zip", sha256, {f"{name}/{f}": f for f in files})]


def _amazon_category(cfg: DatasetConfig) -> str:
    if not cfg.category:
        raise ParamsError(
            f"format amazon2018 needs dataset.<name>.category (e.g. Books) for raw folder {cfg.raw_name!r}"
        )
    return cfg.category


FORMATS = {
    f.name: f
    for f in [
        RawFormat(
            "ml-100k",
            lambda d, cfg, bad: movielens.load_ml100k(d, bad),
            lambda cfg: [FileSpec(("u.data",)), FileSpec(("u.item",)), FileSpec(("u.user",))],
            # sha256 of the GroupLens archives as published (also pinned by TensorFlow Datasets).
            lambda cfg: _zip("ml-100k", "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
                             ["u.data", "u.item", "u.user"]),
        ),
        RawFormat(
            "ml-1m",
            lambda d, cfg, bad: movielens.load_ml1m(d, bad),
            lambda cfg: [
                FileSpec(("ratings.dat", "ratings.dat.gz")), FileSpec(("movies.dat",)), FileSpec(("users.dat",))
            ],
            lambda cfg: _zip("ml-1m", "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
                             ["ratings.dat", "movies.dat", "users.dat"]),
        ),
        RawFormat(
            "amazon2018",
            lambda d, cfg, bad: amazon.load(d, _amazon_category(cfg), bad),
            lambda cfg: [
                FileSpec(amazon.review_names(_amazon_category(cfg))),
                FileSpec(amazon.meta_names(_amazon_category(cfg))),
            ],
            lambda cfg: [
                Source(f"{UCSD_AMAZON}/categoryFilesSmall/{_amazon_category(cfg)}_5.json.gz", None),
                Source(f"{UCSD_AMAZON}/metaFiles2/meta_{_amazon_category(cfg)}.json.gz", None),
            ],
        ),
        RawFormat(
            "steam",
            lambda d, cfg, bad: steam.load(d, bad),
            lambda cfg: [FileSpec(steam.GAMES_NAMES), FileSpec(steam.REVIEW_NAMES)],
            lambda cfg: [
                Source(f"{UCSD_STEAM}/steam_games.json.gz", None),
                Source(f"{UCSD_STEAM}/steam_reviews.json.gz", None),
            ],
        ),
        RawFormat(
            "generic",
            lambda d, cfg, bad: generic.load(d, bad),
            lambda cfg: [
                FileSpec(generic.table_names("interactions")),
                FileSpec(generic.table_names("items")),
                FileSpec(generic.table_names("users"), required=False),
            ],
            lambda cfg: [],
        ),
    ]
}


def raw_format(name: str) -> RawFormat:
    """The format named by `dataset.<name>.format`; unknown names list the known ones."""
    if name not in FORMATS:
        raise ParamsError(f"unknown raw format {name!r}; known formats: {sorted(FORMATS)}")
    return FORMATS[name]


def missing_files(folder: Path, cfg: DatasetConfig) -> list[FileSpec]:
    """The required files of `cfg.format` not present in `folder`."""
    return [spec for spec in raw_format(cfg.format).files(cfg) if spec.required and spec.find(folder) is None]
