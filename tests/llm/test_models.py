"""Model resolution: packaged GGUF materialised once into an HF folder, local folders and HF ids as given."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from safetensors import safe_open
from transformers import AutoTokenizer

from ur4rec import packaged
from ur4rec.llm import models
from ur4rec.llm.models import folder_fingerprint, resolve_model, sha256_file


def test_packaged_smollm2_is_an_hf_folder_keyed_by_the_gguf_hash(smollm2_dir):
    folder = Path(smollm2_dir)
    digest = sha256_file(packaged.smollm2_gguf())[:16]
    assert folder.name == digest
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    with safe_open(str(folder / "model.safetensors"), "pt") as fh:
        assert "model.layers.0.self_attn.q_proj.weight" in fh.keys()
    assert AutoTokenizer.from_pretrained(folder).chat_template
    resolved = resolve_model("packaged:smollm2")
    assert resolved.identity == f"packaged:smollm2@{digest}"


def test_materialising_again_reuses_the_folder(smollm2_dir):
    weights = Path(smollm2_dir) / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert resolve_model("packaged:smollm2").source == smollm2_dir
    assert weights.stat().st_mtime_ns == before


def test_hf_ids_pinned_to_a_commit_pass_through():
    commit = "0123456789abcdef0123456789abcdef01234567"
    r = resolve_model("meta-llama/Llama-2-7b-chat-hf", revision=commit)
    assert (r.source, r.identity, r.is_local, r.revision) == (
        "meta-llama/Llama-2-7b-chat-hf", f"hf:meta-llama/Llama-2-7b-chat-hf@{commit}", False, commit)


def test_a_moving_ref_is_resolved_to_the_commit_the_local_hf_cache_holds(tmp_path, monkeypatch):
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    ref = tmp_path / "models--org--tiny" / "refs" / "main"
    ref.parent.mkdir(parents=True)
    ref.write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = resolve_model("org/tiny", revision="main")
    assert (r.identity, r.revision) == (f"hf:org/tiny@{commit}", commit)  # what the engine is told to load


def test_a_moving_ref_that_cannot_be_resolved_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelError, match="moving reference") as info:
        resolve_model("org/tiny", revision="main")
    assert "\n" not in str(info.value) and "40-digit" in str(info.value)


def test_local_folder_identity_follows_its_content(tmp_path):
    (tmp_path / "config.json").write_text('{"a": 1}')
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 1000)
    first = resolve_model(str(tmp_path))
    assert first.source == str(tmp_path.resolve()) and first.identity.startswith("local@")
    assert resolve_model(str(tmp_path)).identity == first.identity
    (tmp_path / "model.safetensors").write_bytes(b"\1" * 1000)
    assert resolve_model(str(tmp_path)).identity != first.identity


def test_big_weights_are_hashed_whole_and_the_digest_remembered_by_stat(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_REMEMBER_ABOVE", 100)
    monkeypatch.setattr(models, "_QUIET_NS", 0)  # the files here were just written
    monkeypatch.setenv("UR4REC_MODEL_CACHE", str(tmp_path / "model-cache"))
    folder = tmp_path / "weights"
    folder.mkdir()
    path = folder / "w.bin"
    path.write_bytes(bytes(range(200)) * 3)
    base = folder_fingerprint(folder)
    assert list((tmp_path / "model-cache" / "digests").glob("*.json"))  # remembered
    # One byte in the middle, same size: a head-and-tail sample would not see it; the full hash does.
    data = bytearray(path.read_bytes())
    data[300] ^= 1
    path.write_bytes(bytes(data))
    assert folder_fingerprint(folder) != base
    # The remembered digest is used only for the stat it was taken with.
    memo = next((tmp_path / "model-cache" / "digests").glob("*.json"))
    entry = json.loads(memo.read_text())
    assert entry["sha256"] == sha256_file(path) and entry["stat"][2] == 600
    memo.write_text(json.dumps({**entry, "sha256": "f" * 64}))
    assert models.file_digest(path) == "f" * 64  # same stat: the remembered digest (no read)
    time.sleep(0.05)  # a later clock tick, as the 2 s quiet period guarantees outside this test
    path.write_bytes(bytes(data))  # rewritten with the same bytes: ctime moves, so it is read again
    assert models.file_digest(path) == sha256_file(path)


def test_unknown_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither packaged"):
        resolve_model(str(tmp_path / "missing-folder"))
    with pytest.raises(models.ModelError, match="unknown packaged model"):
        resolve_model("packaged:gpt5")
