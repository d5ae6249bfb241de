"""What identifies a run, and the data every run of a dataset shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ur4rec.data.schema import DataFormatError
from ur4rec.paths import BASE_ARM, DATA_ROOT, DatasetPaths, RunPaths
from ur4rec.train.batch import RerankData


@dataclass(frozen=True)
class RunSpec:
    """One run: a backbone on a dataset with one seed, alone (`variant=None`, the Base run) or augmented."""

    dataset: str
    backbone: str
    variant: str | None
    seed: int

    @property
    def arm(self) -> str:
        return BASE_ARM if self.variant is None else self.variant

    def paths(self, root: Path = DATA_ROOT) -> RunPaths:
        return DatasetPaths(self.dataset, root).run(self.backbone, self.arm, self.seed)

    def base(self) -> "RunSpec":
        return RunSpec(self.dataset, self.backbone, None, self.seed)

    def __str__(self) -> str:
        return f"{self.dataset}/{self.backbone}/{self.arm}/seed{self.seed}"


def load_split(paths: DatasetPaths, split: str, history_len: int, n_items: int) -> RerankData:
    return RerankData.from_parquet(paths.prepared / f"{split}.parquet", history_len, n_items)


def count_users(paths: DatasetPaths) -> int:
    """The largest user id in `users.parquet` (ids are dense 1..n_users)."""
    path = paths.prepared / "users.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run the prepare stage (dvc repro prepare@{paths.name})")
    top = pc.max(pq.read_table(path, columns=["user_id"], page_checksum_verification=True).column("user_id")).as_py()
    if top is None:
        raise DataFormatError(f"{path}: no users; rerun the prepare stage")
    return int(top)


def users_of_split(paths: DatasetPaths, split: str) -> np.ndarray:
    table = pq.read_table(paths.prepared / "users.parquet", columns=["user_id", "split"], page_checksum_verification=True)
    users, splits = table.column("user_id").to_numpy(), table.column("split").to_numpy(zero_copy_only=False)
    return users[splits == split]


def training_interactions(paths: DatasetPaths) -> tuple[np.ndarray, np.ndarray]:
    """(user ids, item ids) of every interaction of a TRAINING user: the only interactions a count may use
    (TopPop, item-CF, the popularity offset); valid and test users are never seen in training."""
    path = paths.prepared / "interactions.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run the prepare stage (dvc repro prepare@{paths.name})")
    table = pq.read_table(path, columns=["user_id", "item_id"])
    users = table.column("user_id").to_numpy()
    train = np.isin(users, users_of_split(paths, "train"))
    if not train.any():
        raise DataFormatError(f"{path}: no interaction of a training user; rerun the prepare stage")
    return users[train], table.column("item_id").to_numpy()[train]
