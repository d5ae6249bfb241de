"""Model resolution: packaged GGUF materialised once into an HF folder, local folders and HF ids as given."""

from __future__ import annotations

import json
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


def test_hf_ids_pass_through_with_their_revision():
    r = resolve_model("meta-llama/Llama-2-7b-chat-hf", revision="abc123")
    assert (r.source, r.identity, r.is_local) == ("meta-llama/Llama-2-7b-chat-hf", "hf:meta-llama/Llama-2-7b-chat-hf@abc123", False)


def test_local_folder_identity_follows_its_content(tmp_path):
    (tmp_path / "config.json").write_text('{"a": 1}')
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 1000)
    first = resolve_model(str(tmp_path))
    assert first.source == str(tmp_path.resolve()) and first.identity.startswith("local@")
    assert resolve_model(str(tmp_path)).identity == first.identity
    (tmp_path / "model.safetensors").write_bytes(b"\1" * 1000)
    assert resolve_model(str(tmp_path)).identity != first.identity


def test_big_weights_are_fingerprinted_by_size_head_and_tail(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_FULL_HASH_LIMIT", 100)
    monkeypatch.setattr(models, "_SAMPLE", 10)
    path = tmp_path / "w.bin"
    path.write_bytes(bytes(range(200)))
    base = folder_fingerprint(tmp_path)
    path.write_bytes(b"X" + bytes(range(1, 200)))
    assert folder_fingerprint(tmp_path) != base
    path.write_bytes(bytes(range(201)) )
    assert folder_fingerprint(tmp_path) != base


def test_unknown_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither packaged"):
        resolve_model(str(tmp_path / "missing-folder"))
    with pytest.raises(ValueError, match="unknown packaged model"):
        resolve_model("packaged:gpt5")
