import json

import polars as pl
import pyarrow.parquet as pq
import pytest

from ur4rec.io import atomic_dir, atomic_path, write_json, write_parquet


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_dir_swaps_whole_directory(tmp_path):
    target = tmp_path / "prepared"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(ValueError):
        with atomic_dir(target) as tmp:
            (tmp / "b.txt").write_text("2")
            raise ValueError("boom")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    with atomic_dir(target) as tmp:
        (tmp / "c.txt").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]


def test_write_parquet_accepts_polars(tmp_path):
    df = pl.DataFrame({"id": [1, 2], "hist": [[1], [2, 3]]})
    write_parquet(tmp_path / "x.parquet", df)
    assert pq.read_table(tmp_path / "x.parquet").to_pylist() == df.to_dicts()


def test_artifacts_get_umask_permissions_not_private_temp_ones(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {})
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "x").write_text("1")
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
