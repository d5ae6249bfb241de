"""`ur4rec encode --dataset NAME` reads params like the stage and calls the same library function."""

from __future__ import annotations

from typer.testing import CliRunner

from tests.conftest import REPO_ROOT, dataset_entry
from tests.encode.helpers import write_llm, write_prepared
from ur4rec.cli.app import app
from ur4rec.encode.store import EmbeddingStore
from ur4rec.paths import DatasetPaths


def test_encode_command_honours_params_and_overrides(tmp_path, monkeypatch, tiny_bert):
    monkeypatch.chdir(tmp_path)
    paths = DatasetPaths("tiny")
    write_prepared(paths)
    write_llm(paths, user_status={3: "failed"})
    result = CliRunner().invoke(app, [
        "encode", "--dataset", "tiny", "--params", str(REPO_ROOT / "params.yaml"), "-S", dataset_entry("tiny"),
        "-S", f"encoder.model={tiny_bert}", "-S", "encoder.on_bad_generation=zero", "-S", "encoder.threads=1",
    ])
    assert result.exit_code == 0, result.output
    assert "user_pref: 6 vectors, replaced {'failed': 1} (zero)" in result.output
    store = EmbeddingStore(tmp_path / "data" / "tiny" / "emb")
    assert store.dim == 32 and not store.get("user_pref", [3]).any() and store.get("user_pref", [1]).any()


def test_encode_command_reports_bad_params(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["encode", "--dataset", "tiny", "--params", str(REPO_ROOT / "params.yaml"),
                                      "-S", "encoder.pooling=max"])
    assert result.exit_code == 1 and "encoder.pooling: 'max' is not one of" in result.output
