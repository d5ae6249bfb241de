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
import tempfile
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
from ur4rec.runs.model import build_model, catalog_of
from ur4rec.runs.settings import Run, Settings
from ur4rec.runs.stages import EMB, EMB_GENERATIONS, STAGES, fingerprint_file, recorded, variant_reads
from ur4rec.runs.spec import RunSpec, count_users, load_split, users_of_split
from ur4rec.train.checkpoint import load_weights
from ur4rec.train import distributed
from ur4rec.train.config import TrainConfig
from ur4rec.train.determinism import make_repeatable
from ur4rec.train.loop import WEIGHTS_FILE, FitResult, fit
from ur4rec.train.resume import STATE_FILE, fingerprint
from ur4rec.train.rerank import RerankTask

CONFIG_FILE = "config.json"
INPUTS_FILE = "inputs.json"  # the digest of everything a training read (`pretrain_inputs`, `joint_inputs`)
VARIANTS_FILE = "variants.json"  # pretrain/ and arms/: the variants the stage wrote


@dataclass
class RunParts:
    """A run as training builds it, before any training: what `fit` receives, and the run it was built for."""

    model: nn.Module
    groups: list[dict] | None
    task: RerankTask
    cfg: TrainConfig
    run: Run

    @property
    def history_len(self) -> int:
        return self.run.history_len


def prepare_run(s: Settings, spec: RunSpec, root: Path = DATA_ROOT) -> RunParts:
    """Seed the process, then build the run's model, parameter groups, task and loop settings; `train` fits
    exactly these, and a benchmark can time the loop on them without writing a run."""
    return build_parts(s.resolve(spec, root))


def build_parts(run: Run) -> RunParts:
    cfg = run.loop
    make_repeatable(cfg.seed, cfg.threads, cfg.deterministic)
    catalog = catalog_of(run)
    model, groups = build_model(run, catalog, training=True)
    dataset = run.paths.dataset
    task = RerankTask(load_split(dataset, "train", run.history_len, catalog.n_items),
                      load_split(dataset, "valid", run.history_len, catalog.n_items),
                      cfg.select_metric, cfg.eval_batch_size)
    return RunParts(model, groups, task, cfg, run)


def train(s: Settings, spec: RunSpec, root: Path = DATA_ROOT, inputs: dict[str, Any] | None = None) -> FitResult:
    """Train the run and write `train/` whole (atomically) plus its DVCLive logs; `inputs` (the digest the
    run was trained from) goes into `train/` with the checkpoint, so it never outlives a failed retraining."""
    parts = build_parts(s.resolve(spec, root))
    paths = parts.run.paths
    if inputs is None:  # the Base run, or an arm trained from the CLI: resume only from a run with these inputs
        inputs = stage_inputs(s, "train" if spec.variant is None else "train_aug", spec, root)
    key = resume_key(inputs)
    pretrain_backbone(parts, key)  # the backbone's own pre-training, when its config asks for it
    with distributed.output_dir(paths.train) as out:
        write_json(out / CONFIG_FILE, run_config(parts.run, parts.task))
        result = fit(parts.model, parts.task, parts.cfg, out, parts.groups, live_dir=paths.live, state_dir=paths.resume,
                     inputs=key)
        if spec.variant is not None:
            write_json(out / INPUTS_FILE, inputs)
    distributed.say(f"{spec}: best valid {parts.cfg.select_metric} {result.best_valid:.4f} at epoch "
                    f"{result.best_epoch + 1} of {result.epochs_run}, {result.mean_epoch_seconds:.1f} s/epoch")
    return result


def run_config(run: Run, task: RerankTask) -> dict[str, Any]:
    spec = run.spec
    return {
        "dataset": spec.dataset, "backbone": spec.backbone, "model": run.backbone.model, "arm": spec.arm,
        "variant": None if run.variant is None else dataclasses.asdict(run.variant),
        "seed": spec.seed, "backbone_config": dataclasses.asdict(run.backbone.config),
        "train_config": dataclasses.asdict(run.loop), "history_len": run.history_len,
        "n_candidates": task.train.n_candidates, "n_train_samples": len(task.train), "n_valid_samples": len(task.valid),
        # an arm's fusion, standardisation and learning rates, so runs under other settings can be told apart
        "joint": None if run.variant is None else dataclasses.asdict(run.retriever.joint),
    }


def is_main_process() -> bool:
    """Whether this process writes and reports (rank 0 under torchrun; always with one process)."""
    return distributed.world().main


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
    """Everything a variant's pre-training reads (the pretrain stage's params and deps for this variant, from
    `ur4rec.runs.stages`). A variant without pre-training writes a marker from its own block and the stage's
    code; its arm does not read the marker (`joint_inputs`), so pre-training settings never retrain it. Equal
    inputs give the same folder (pre-training is repeatable), so a folder whose `inputs.json` equals this is
    reused."""
    if not s.variant_config(spec.variant).needs_pretraining:
        code = fingerprint_file(STAGES["pretrain"].script)
        return inputs_digest({"params": recorded(s.params, [f"variant.{spec.variant}"]), "seed": spec.seed},
                             {code: root / Path(code).relative_to("data")})
    return stage_inputs(s, "pretrain", spec, root)


def joint_inputs(s: Settings, spec: RunSpec, root: Path = DATA_ROOT) -> dict[str, Any]:
    """Everything an arm's joint training reads: the train_aug stage's params and deps for this variant (the
    settings, and the sha256 of the code fingerprints, the prepared data, the vectors, the Base checkpoint and
    the variant's pre-training folder)."""
    return stage_inputs(s, "train_aug", spec, root, upstream=s.variant_config(spec.variant).needs_pretraining)


def stage_inputs(s: Settings, stage: str, spec: RunSpec, root: Path, upstream: bool = True) -> dict[str, Any]:
    keys, files = variant_reads(stage, spec.dataset, spec.backbone, spec.seed, spec.arm, root, upstream)
    params = own_entry(s, spec.backbone, recorded(s.params, keys))
    return inputs_digest({"params": params, "seed": spec.seed}, own_generation(s, spec, root, files))


PER_BACKBONE = "retriever.per_backbone"


def own_entry(s: Settings, backbone: str, params: dict[str, Any]) -> dict[str, Any]:
    """`params` with `retriever.per_backbone` cut to the one entry the backbone reads (its own, else its model
    family's, as `RetrieverConfig.entry` picks): DVC tracks the block whole, so a change to one backbone's entry
    reruns every backbone's stages, but only that backbone's arms retrain."""
    whole = params.get(PER_BACKBONE)
    if not isinstance(whole, dict):
        return params
    name = next((k for k in (backbone, s.backbone_spec(backbone).model) if k in whole), None)
    return {**params, PER_BACKBONE: {} if name is None else {name: whole[name]}}


def own_generation(s: Settings, spec: RunSpec, root: Path, files: dict[str, Path]) -> dict[str, Path]:
    """`files` with the vectors the run reads, its own generation's store, in place of the stage's two vector
    folders (DVC's deps): adding generations retrains no seed whose generation stays the same."""
    emb, generations = (dep.replace("${item.dataset}", spec.dataset) for dep in (EMB, EMB_GENERATIONS))
    files = {name: path for name, path in files.items() if name != generations}
    own = DatasetPaths(spec.dataset, root, s.generation_of(spec.seed)).emb
    if emb in files and own != files[emb]:
        del files[emb]
        files[f"data/{own.relative_to(root).as_posix()}"] = own
    return files


def resume_key(inputs: dict[str, Any]) -> str:
    """The part of a resume fingerprint that says which inputs a training read (`ur4rec.train.resume`)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


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
    run = s.resolve(spec, root)
    variant = run.variant
    paths = run.paths
    inputs = pretrain_inputs(s, spec, root) if inputs is None else inputs
    if not variant.needs_pretraining:
        marker = {"pretrained": False, "variant": dataclasses.asdict(variant)}
        with distributed.output_dir(paths.pretrain) as out:
            write_json(out / CONFIG_FILE, marker)
            write_json(out / INPUTS_FILE, inputs)
        return marker
    p = run.retriever.pretrain
    cfg = pretrain_config(run)
    make_repeatable(cfg.seed, cfg.threads, cfg.deterministic)
    task, retriever = build_pretrain_task(run)
    config = {"pretrained": True, "variant": dataclasses.asdict(variant), "n_proxies": retriever.n_proxies,
              "z_history": task.z_history, "arch": dataclasses.asdict(run.retriever.arch), "pretrain": dataclasses.asdict(p),
              "n_train_pairs": task.n_train, "n_valid_pairs": len(task.data.valid)}
    with distributed.output_dir(paths.pretrain) as out:
        write_json(out / CONFIG_FILE, config)
        result = fit(retriever, task, cfg, out, state_dir=paths.pretrain_resume, inputs=resume_key(inputs))
        write_json(out / INPUTS_FILE, inputs)
    best = result.history[result.best_epoch] if result.best_epoch >= 0 else {}
    distributed.say(f"{spec}: pre-trained {result.epochs_run} epochs; best valid loss {result.best_valid:.4f}"
          + "".join(f", {k} {v:.3f}" for k, v in best.items() if k in ("valid_cl", "valid_hit@1", "valid_pim_acc")))
    return dataclasses.asdict(result)


def pretrain_config(run: Run) -> TrainConfig:
    """The loop settings of pre-training: `retriever.pretrain`, on the augmented runs' threads."""
    p, loop = run.retriever.pretrain, run.loop
    return TrainConfig(seed=run.spec.seed, batch_size=p.batch_size, eval_batch_size=p.eval_batch_size, epochs=p.epochs,
                       patience=p.patience, select_metric=p.select_metric, weight_decay=p.weight_decay,
                       grad_clip=p.grad_clip, threads=run.retriever.joint.threads or 0, lr=p.lr,
                       progress=loop.progress, deterministic=loop.deterministic, distributed=loop.distributed)


def pretrain_task(s: Settings, spec: RunSpec, root: Path = DATA_ROOT, base: nn.Module | None = None):
    """The pre-training task of a run (frozen h_i of its seed's Base checkpoint) and a fresh retriever.

    `base`: a Base backbone to take h_i from instead of the checkpoint (a benchmark times pre-training
    without a trained Base; the speed does not depend on the weights)."""
    return build_pretrain_task(s.resolve(spec, root), base)


def build_pretrain_task(run: Run, base: nn.Module | None = None):
    variant, paths, bspec = run.variant, run.paths, run.backbone
    catalog = catalog_of(run)
    if base is None:
        base = models.build(bspec.model, bspec.config, catalog)
        load_weights(base, run.base_paths().train / WEIGHTS_FILE)
    base.eval()
    with torch.no_grad():
        h_table = base.item_repr(torch.arange(catalog.n_items + 1)).float()
    per = run.retriever_settings()
    store = EmbeddingStore(paths.dataset.emb)
    n_items = catalog.n_items
    length = max(per.z_history, 1)
    train_users = users_of_split(paths.dataset, "train")
    standardise = run.retriever.joint.standardise  # the vectors joint training will read, so pre-train on them
    data = PretrainData(
        h_table=h_table,
        user_table=user_table(store, variant, count_users(paths.dataset), train_users, standardise),
        item_table=item_table(store, variant, n_items, standardise),
        train=load_split(paths.dataset, "train", length, n_items),
        valid=load_split(paths.dataset, "valid", length, n_items),
        sampler=NegativeSampler.from_interactions(paths.dataset.prepared / "interactions.parquet", n_items,
                                                  popular_users=np.asarray(train_users)),
    )
    retriever = build_retriever(run.retriever, variant, per, h_table.shape[1], store.dim)
    task = PretrainTask(data, run.retriever.pretrain, tuple(variant.objectives), per.z_history,
                        run.retriever.arch.bf16, run.spec.seed)
    return task, retriever


def pretrain_backbone(parts: RunParts, key: str = "") -> FitResult | None:
    """The backbone's own pre-training (Recformer's, `backbone.<name>.pretrain`) on the loop, before the run's
    training: in place on `parts.model`, on the run's training and validation lists, with the backbone's
    pretrain_* loop settings and the run's seed. None when not asked (an augmented run's model starts from
    its Base, which was pre-trained), or when the run's training will resume from its own state (which holds
    the weights).

    Resumable from `paths.backbone_pretrain_resume`; an interruption after it finished and before the first
    epoch of the training reruns it, to the same weights. Its checkpoint (encoder + MLM head) is not kept."""
    run, paths = parts.run, parts.run.paths
    pretraining = models.pretraining(run.backbone.model)  # the model's own hook, found by name like the model
    if pretraining is None or not run.is_base or not run.backbone.config.pretrain:
        return None
    state = paths.resume / STATE_FILE
    if state.exists() and json.loads(state.read_text(encoding="utf-8")).get("fingerprint") == fingerprint(
            parts.cfg, parts.model, parts.task.identity(), key):
        return None
    module, task, loop = pretraining(parts.model, parts.task.train, parts.task.valid, run.spec.seed)
    cfg = dataclasses.replace(parts.cfg, **loop)
    with tempfile.TemporaryDirectory(prefix=".backbone-pretrain.") as scratch:
        result = fit(module, task, cfg, scratch, state_dir=paths.backbone_pretrain_resume, inputs=key)
    distributed.say(f"{run.spec}: backbone pre-trained {result.epochs_run} epochs; "
                    f"best valid {cfg.select_metric} {result.best_valid:.4f} at epoch {result.best_epoch + 1}")
    return result
