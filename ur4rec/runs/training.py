"""Train one run (Base or an augmented arm) on the loop, and pre-train a variant's retriever.

Layout under `data/<ds>/runs/<backbone>/seed<k>/` (`ur4rec.paths.RunPaths`, `SeedPaths`):
    base/train/            the Base run: model.safetensors (best by validation), config.json, fit.json
                           (written whole, atomically)
    base/dvclive/          per-epoch metrics and plots of the training
    pretrain/<variant>/    model.safetensors (the retriever), config.json, fit.json, inputs.json; or config.json
                           and inputs.json alone (a variant without pre-training)
    arms/<variant>/        train/ (as Base's, plus inputs.json) and dvclive/ of the variant's joint training

The pretrain and train_aug stages each handle every variant of one backbone and seed, and keep a variant's
folder whose `inputs.json` (the digest of everything its training read) is unchanged: see `for_each_variant`.

Under torchrun (`train.distributed.nproc` > 1) every process trains and rank 0 alone writes: the folders are
the same as with one process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ur4rec import models
from ur4rec.encode.store import EmbeddingStore
from ur4rec.io import write_json
from ur4rec.paths import DATA_ROOT, DatasetPaths
from ur4rec.retriever.build import build_retriever
from ur4rec.retriever.negatives import NegativeSampler
from ur4rec.retriever.pretrain import PretrainData, PretrainTask
from ur4rec.retriever.tables import item_table, user_table
from ur4rec.runs.model import build_model, catalog_of, history_len
from ur4rec.runs.settings import Settings
from ur4rec.runs.spec import RunSpec, count_users, load_split, users_of_split
from ur4rec.train.checkpoint import load_weights
from ur4rec.train import distributed
from ur4rec.train.config import TrainConfig
from ur4rec.train.determinism import make_repeatable
from ur4rec.train.loop import WEIGHTS_FILE, FitResult, fit
from ur4rec.train.rerank import RerankTask

CONFIG_FILE = "config.json"
INPUTS_FILE = "inputs.json"  # the digest of everything a training read (`pretrain_inputs`, `joint_inputs`)
VARIANTS_FILE = "variants.json"  # pretrain/ and arms/: the variants the stage wrote


@dataclass
class RunParts:
    """A run as training builds it, before any training: what `fit` receives, and the history length read."""

    model: nn.Module
    groups: list[dict] | None
    task: RerankTask
    cfg: TrainConfig
    history_len: int


def prepare_run(s: Settings, spec: RunSpec, root: Path = DATA_ROOT) -> RunParts:
    """Seed the process, then build the run's model, parameter groups, task and loop settings; `train` fits
    exactly these, and a benchmark can time the loop on them without writing a run."""
    cfg = s.train_config(spec.backbone, spec.seed, joint=spec.variant is not None)
    make_repeatable(spec.seed, cfg.threads, cfg.deterministic)
    paths = spec.paths(root)
    catalog = catalog_of(s, spec, root)
    model, groups = build_model(s, spec, catalog, training=True, root=root)
    length = history_len(s, spec)
    task = RerankTask(load_split(paths.dataset, "train", length, catalog.n_items),
                      load_split(paths.dataset, "valid", length, catalog.n_items),
                      cfg.select_metric, cfg.eval_batch_size)
    return RunParts(model, groups, task, cfg, length)


def train(s: Settings, spec: RunSpec, root: Path = DATA_ROOT, inputs: dict[str, Any] | None = None) -> FitResult:
    """Train the run and write `train/` whole (atomically) plus its DVCLive logs; `inputs` (the digest the
    run was trained from) goes into `train/` with the checkpoint, so it never outlives a failed retraining."""
    run = prepare_run(s, spec, root)
    paths = spec.paths(root)
    if hasattr(run.model, "before_fit") and not paths.resume.exists():
        run.model.before_fit(run.task.train)  # a model's own pre-training (Recformer's), once, not again on resume
    with distributed.output_dir(paths.train) as out:
        write_json(out / CONFIG_FILE, run_config(s, spec, run.cfg, run.history_len, run.task))
        result = fit(run.model, run.task, run.cfg, out, run.groups, live_dir=paths.live, state_dir=paths.resume)
        if inputs is not None:
            write_json(out / INPUTS_FILE, inputs)
    distributed.say(f"{spec}: best valid {run.cfg.select_metric} {result.best_valid:.4f} at epoch {result.best_epoch + 1} of "
          f"{result.epochs_run}, {result.mean_epoch_seconds:.1f} s/epoch")
    return result


def run_config(s: Settings, spec: RunSpec, cfg: TrainConfig, length: int, task: RerankTask) -> dict[str, Any]:
    bspec = s.backbone_spec(spec.backbone)
    return {
        "dataset": spec.dataset, "backbone": spec.backbone, "model": bspec.model, "arm": spec.arm,
        "variant": None if spec.variant is None else dataclasses.asdict(s.variant_config(spec.variant)),
        "seed": spec.seed, "backbone_config": dataclasses.asdict(bspec.config), "train_config": dataclasses.asdict(cfg),
        "history_len": length, "n_candidates": task.train.n_candidates, "n_train_samples": len(task.train),
        "n_valid_samples": len(task.valid),
        # an arm's fusion, standardisation and learning rates, so runs under other settings can be told apart
        "joint": None if spec.variant is None else dataclasses.asdict(s.retriever.joint),
    }


def pretrain_processes(s: Settings, variants: list[str]) -> int:
    """Processes a pretrain stage needs: variants without pre-training only write their markers."""
    needed = any(s.variant_config(v).needs_pretraining for v in variants)
    return s.train.distributed.nproc if needed else 1


def for_each_variant(s: Settings, folder: Path, dataset: str, backbone: str, seed: int,
                     inputs_file: Callable[[RunSpec], Path], inputs: Callable[[RunSpec], dict[str, Any]],
                     run: Callable[[RunSpec, dict[str, Any]], str]) -> dict[str, str]:
    """One stage for every variant of a backbone and seed (pretrain, train_aug), not one stage per variant.

    DVC re-reads and rewrites the whole dvc.lock after every stage, about 3 s per 100 KB: at three seeds, 75
    joint-training stages paid about 11 s each in start-up and bookkeeping. The stage's output `folder`
    persists between runs, and a variant whose `inputs_file` equals its `inputs` now is kept, so a change to
    one variant (or a new one in `variants`) retrains that variant alone; `run` gets the inputs it is to record.
    Folders of variants no longer listed are removed. Returns what happened to each variant: "kept" or `run`'s
    answer."""
    if distributed.world().main:
        if folder.exists():
            for entry in folder.iterdir():
                if entry.name not in s.variants and entry.name != VARIANTS_FILE:
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        # the stage's output exists even with no variant (DVC requires it); no stage reads this file
        write_json(folder / VARIANTS_FILE, {"variants": s.variants})
    done: dict[str, str] = {}
    for variant in s.variants:
        spec = RunSpec(dataset, backbone, variant, seed)
        kept, wanted = inputs_file(spec), inputs(spec)
        if kept.exists() and json.loads(kept.read_text(encoding="utf-8")) == wanted:
            done[variant] = "kept"
            distributed.say(f"{spec}: inputs unchanged, kept")
            continue
        done[variant] = run(spec, wanted)
    return done


def pretrain_seed(s: Settings, dataset: str, backbone: str, seed: int, root: Path = DATA_ROOT) -> dict[str, str]:
    """The pretrain stage of one backbone and seed: `pretrain/<variant>/` for every variant of `variants`."""
    def run(spec: RunSpec, inputs: dict[str, Any]) -> str:
        pretrain(s, spec, root, inputs)
        return "pretrained" if s.variant_config(spec.variant).needs_pretraining else "marker"

    return for_each_variant(s, DatasetPaths(dataset, root).seed_runs(backbone, seed).pretrain, dataset, backbone, seed,
                            lambda spec: spec.paths(root).pretrain / INPUTS_FILE,
                            lambda spec: pretrain_inputs(s, spec, root), run)


def train_arms(s: Settings, dataset: str, backbone: str, seed: int, root: Path = DATA_ROOT) -> dict[str, str]:
    """The train_aug stage of one backbone and seed: the joint training of every variant of `variants` (the
    matched control included) from the seed's Base run, into `arms/<variant>/`."""
    def run(spec: RunSpec, inputs: dict[str, Any]) -> str:
        train(s, spec, root, inputs)
        return "trained"

    return for_each_variant(s, DatasetPaths(dataset, root).seed_runs(backbone, seed).arms, dataset, backbone, seed,
                            lambda spec: spec.paths(root).train / INPUTS_FILE,
                            lambda spec: joint_inputs(s, spec, root), run)


def pretrain_inputs(s: Settings, spec: RunSpec, root: Path = DATA_ROOT) -> dict[str, Any]:
    """Everything a variant's pre-training reads: its settings, and the sha256 of the code fingerprint, the
    prepared data, the vectors and the Base checkpoint. Equal inputs give the same folder (pre-training is
    repeatable), so a folder whose `inputs.json` equals this is reused."""
    variant = s.variant_config(spec.variant)
    settings: dict[str, Any] = {"variant": dataclasses.asdict(variant), "seed": spec.seed}
    code = {"code": root / "code" / "pretrain.json"}  # data/code/pretrain.json (dvc.yaml)
    if not variant.needs_pretraining:
        return inputs_digest(settings, code)
    paths = spec.paths(root)
    settings |= {"arch": dataclasses.asdict(s.retriever.arch), "pretrain": dataclasses.asdict(s.retriever.pretrain),
                 "per_backbone": dataclasses.asdict(s.per_backbone(spec.backbone)),
                 "backbone": dataclasses.asdict(s.backbone_spec(spec.backbone).config),
                 "model": s.backbone_spec(spec.backbone).model, "loop": dataclasses.asdict(pretrain_config(s, spec.seed)),
                 "standardise": s.retriever.joint.standardise}
    settings["loop"].pop("progress")  # bars change no number
    files = {"prepared": paths.dataset.prepared, "emb": paths.dataset.emb, "base": paths.sibling(spec.base().arm).train}
    return inputs_digest(settings, code | files)


def joint_inputs(s: Settings, spec: RunSpec, root: Path = DATA_ROOT) -> dict[str, Any]:
    """Everything an arm's joint training reads: the variant, the backbone, the retriever and joint settings,
    the loop settings, and the sha256 of the code fingerprint, the prepared data, the vectors, the Base
    checkpoint and the variant's pre-training folder."""
    bspec = s.backbone_spec(spec.backbone)
    loop = dataclasses.asdict(s.train_config(spec.backbone, spec.seed, joint=True))
    loop.pop("progress")  # bars change no number
    settings = {"variant": dataclasses.asdict(s.variant_config(spec.variant)), "seed": spec.seed,
                "backbone": dataclasses.asdict(bspec.config), "model": bspec.model, "loop": loop,
                "joint": dataclasses.asdict(s.retriever.joint), "arch": dataclasses.asdict(s.retriever.arch),
                "per_backbone": dataclasses.asdict(s.per_backbone(spec.backbone))}
    paths = spec.paths(root)
    files = {"code": root / "code" / "train_aug.json",  # data/code/train_aug.json (dvc.yaml)
             "prepared": paths.dataset.prepared, "emb": paths.dataset.emb,
             "base": paths.sibling(spec.base().arm).train, "pretrain": paths.pretrain}
    return inputs_digest(settings, files)


def inputs_digest(settings: dict[str, Any], files: dict[str, Path]) -> dict[str, Any]:
    """An `inputs.json`: the settings, and the sha256 of each file or folder, as read back from the file."""
    digests = {name: tree_digest(path) for name, path in files.items()}
    return json.loads(json.dumps({"settings": settings, "files": digests}))


def tree_digest(path: Path) -> str | None:
    """sha256 over a file, or over a folder's files (relative names and contents); None when absent."""
    if not path.exists():
        return None
    digest = hashlib.sha256()
    for file in sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def pretrain(s: Settings, spec: RunSpec, root: Path = DATA_ROOT, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Pre-train the variant's retriever against its seed's Base run, or write the no-pre-training marker;
    `inputs`: its `pretrain_inputs`, when the caller has them already."""
    variant = s.variant_config(spec.variant)
    paths = spec.paths(root)
    inputs = pretrain_inputs(s, spec, root) if inputs is None else inputs
    if not variant.needs_pretraining:
        marker = {"pretrained": False, "variant": dataclasses.asdict(variant)}
        with distributed.output_dir(paths.pretrain) as out:
            write_json(out / CONFIG_FILE, marker)
            write_json(out / INPUTS_FILE, inputs)
        return marker
    p = s.retriever.pretrain
    cfg = pretrain_config(s, spec.seed)
    make_repeatable(spec.seed, cfg.threads, cfg.deterministic)
    task, retriever = pretrain_task(s, spec, root)
    config = {"pretrained": True, "variant": dataclasses.asdict(variant), "n_proxies": retriever.n_proxies,
              "z_history": task.z_history, "arch": dataclasses.asdict(s.retriever.arch), "pretrain": dataclasses.asdict(p),
              "n_train_pairs": task.n_train, "n_valid_pairs": len(task.data.valid)}
    with distributed.output_dir(paths.pretrain) as out:
        write_json(out / CONFIG_FILE, config)
        result = fit(retriever, task, cfg, out, state_dir=paths.pretrain_resume)
        write_json(out / INPUTS_FILE, inputs)
    best = result.history[result.best_epoch] if result.best_epoch >= 0 else {}
    distributed.say(f"{spec}: pre-trained {result.epochs_run} epochs; best valid loss {result.best_valid:.4f}"
          + "".join(f", {k} {v:.3f}" for k, v in best.items() if k in ("valid_cl", "valid_hit@1", "valid_pim_acc")))
    return dataclasses.asdict(result)


def pretrain_config(s: Settings, seed: int) -> TrainConfig:
    """The loop settings of pre-training: `retriever.pretrain`, on the augmented runs' threads."""
    p = s.retriever.pretrain
    return TrainConfig(seed=seed, batch_size=p.batch_size, eval_batch_size=p.eval_batch_size, epochs=p.epochs,
                       patience=p.patience, select_metric=p.select_metric, weight_decay=p.weight_decay,
                       grad_clip=p.grad_clip, threads=s.retriever.joint.threads or 0, lr=p.lr,
                       progress=s.train.progress, deterministic=s.train.deterministic, distributed=s.train.distributed)


def pretrain_task(s: Settings, spec: RunSpec, root: Path = DATA_ROOT, base: nn.Module | None = None):
    """The pre-training task of a run (frozen h_i of its seed's Base checkpoint) and a fresh retriever.

    `base`: a Base backbone to take h_i from instead of the checkpoint (a benchmark times pre-training
    without a trained Base; the speed does not depend on the weights)."""
    variant = s.variant_config(spec.variant)
    paths = spec.paths(root)
    bspec = s.backbone_spec(spec.backbone)
    catalog = catalog_of(s, spec, root)
    if base is None:
        base = models.build(bspec.model, bspec.config, catalog)
        load_weights(base, paths.sibling(spec.base().arm).train / WEIGHTS_FILE)
    base.eval()
    with torch.no_grad():
        h_table = base.item_repr(torch.arange(catalog.n_items + 1)).float()
    per = s.per_backbone(spec.backbone)
    store = EmbeddingStore(paths.dataset.emb)
    n_items = catalog.n_items
    length = max(per.z_history, 1)
    train_users = users_of_split(paths.dataset, "train")
    standardise = s.retriever.joint.standardise  # the vectors joint training will read, so pre-train on them
    data = PretrainData(
        h_table=h_table,
        user_table=user_table(store, variant, count_users(paths.dataset), train_users, standardise),
        item_table=item_table(store, variant, n_items, standardise),
        train=load_split(paths.dataset, "train", length, n_items),
        valid=load_split(paths.dataset, "valid", length, n_items),
        sampler=NegativeSampler.from_interactions(paths.dataset.prepared / "interactions.parquet", n_items,
                                                  popular_users=np.asarray(train_users)),
    )
    retriever = build_retriever(s.retriever, variant, per, h_table.shape[1], store.dim)
    task = PretrainTask(data, s.retriever.pretrain, tuple(variant.objectives), per.z_history, s.retriever.arch.bf16,
                        spec.seed)
    return task, retriever
