"""Retriever speed on real MovieLens-100K samples, each measurement side by side in one run.

  fast path   eq. 9 with all C candidates in one [P; h_1..h_C] pass (mask (c)) vs one [P; h_i] pass per
              candidate (batched as B·C sequences), forward + backward, and their max output difference
  joint epoch the UR4Rec augmented backbone vs the Base backbone, one training step loop over the same
              batches with the shared loop's `train_epoch` (target: ratio <= 1.5x, paper: "close to")
  pretrain    pre-training throughput (samples/s) with both objectives

The default CPU retriever (packaged MiniLM, its first `retriever.arch.n_layers` layers) and the default
backbone configs are used; embeddings are random vectors of the encoder's width (speed does not depend on
their values) unless `data/ml-100k/emb` exists. Timings alternate the contenders and keep the best of
`--repeats`, since a shared CPU is noisy.

    python bench/bench_retriever.py [--backbones prm gru4rec] [--batches 12] [--repeats 3] [--threads 2]
                                    [--widths default|paper]

`--widths paper` times the paper's widths instead of the CPU defaults: backbones of dim 768 and a BERT-base
shaped retriever block (768 wide, 12 heads, FFN 3072, random weights since no checkpoint ships offline). The
ratio is mostly retriever FLOPs over backbone FLOPs per candidate, so it depends on these widths.

Prints a table with ratios and writes bench/results/retriever.json (retriever-paper.json with --widths paper).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("UR4REC_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "bench" / "results"
DATASET = "ml-100k"
# A BERT-base shaped retriever block (the paper initialises from bert-base-uncased, which is not offline here).
PAPER_RETRIEVER = ("retriever.arch.init_checkpoint=none", "retriever.arch.width=768", "retriever.arch.n_heads=12",
                   "retriever.arch.ffn_dim=3072")


def prepared_root(tmp: Path) -> Path:
    """A data root holding ml-100k prepared samples and an embedding store."""
    from ur4rec.config import load_params
    from ur4rec.data.prepare import prepare_dataset
    from ur4rec.paths import DatasetPaths

    repo_paths = DatasetPaths(DATASET, REPO / "data")
    if (repo_paths.prepared / "train.parquet").exists() and (repo_paths.emb / "meta.json").exists():
        return REPO / "data"
    paths = DatasetPaths(DATASET, tmp)
    prepare_dataset(load_params(REPO / "params.yaml"), DATASET, raw_dir=SHARED / DATASET, out=paths.prepared)
    random_store(paths)
    return tmp


def random_store(paths) -> None:
    import pyarrow.parquet as pq

    from ur4rec.encode.store import KindVectors, write_store
    from ur4rec.retriever.bert_init import read_shape, resolve_checkpoint

    dim = read_shape(resolve_checkpoint("packaged:minilm")).width
    items = pq.read_table(paths.prepared / "items.parquet", columns=["item_id"]).column("item_id").to_numpy()
    users = pq.read_table(paths.prepared / "users.parquet", columns=["user_id"]).column("user_id").to_numpy()
    g = torch.Generator().manual_seed(0)
    kinds = {k: KindVectors(ids, torch.randn(len(ids), dim, generator=g))
             for k, ids in (("item_know", items), ("item_text", items), ("user_pref", users), ("user_text", users))}
    write_store(paths.emb, kinds, {"encoder": {"fingerprint": "random"}})


def best_of(repeats: int, *fns):
    """Run the contenders alternately `repeats` times; the best time of each."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            started = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - started)
    return best


def bench_fast_path(rcfg, k: int, z_history: int, n_candidates: int, repeats: int, bf16: bool) -> dict:
    from ur4rec.retriever.augment import maybe_bf16
    from ur4rec.retriever.model import Retriever

    torch.manual_seed(0)
    retriever = Retriever(rcfg.arch, k, h_dim=64, z_dim=384)
    b = 8
    h = torch.randn(b, n_candidates, 64)
    z = torch.randn(b, 1 + z_history, 384)
    mask = torch.ones(b, 1 + z_history, dtype=torch.bool)

    def step(fn):
        def run():
            retriever.zero_grad(set_to_none=True)
            with maybe_bf16(bf16, h.device):
                out = fn(h, z, mask)
            out.float().square().mean().backward()
        return run

    with torch.no_grad():
        retriever.eval()
        diff = (retriever.augment(h, z, mask) - retriever.augment_per_item(h, z, mask)).abs().max().item()
        retriever.train()
    fast, per_item = best_of(repeats, step(retriever.augment), step(retriever.augment_per_item))
    return {"K": k, "z_keys": 1 + z_history, "candidates": n_candidates, "batch": b, "bf16": bf16,
            "fast_s": fast, "per_item_s": per_item, "speedup": per_item / fast, "max_abs_diff_fp32": diff}


def bench_joint_epoch(root: Path, backbone: str, params: dict, batches: int, repeats: int) -> dict:
    """One step loop over the same `batches` training batches: Base vs UR4Rec-augmented backbone."""
    from ur4rec.retriever.joint import history_len, variant_factory
    from ur4rec.train.batch import RerankData
    from ur4rec.train.loop import make_optimizer, train_epoch
    from ur4rec.train.run import run_context, unpack

    ctx = run_context(DATASET, backbone, "ur4rec", params, root=root)
    cfg = ctx.train_cfg
    hist = history_len(params, backbone, ctx.history_len)
    full = ctx.load_split("train", hist)
    n = min(len(full), batches * cfg.batch_size)
    data = RerankData(full.user_ids[:n], full.history[:n], full.candidates[:n], full.target_pos[:n], full.sample_ids[:n])
    base = ctx.build_backbone()
    augmented, groups = unpack(variant_factory("ur4rec-no-pretrain", training=False)(ctx))
    runs = {}
    for name, model, g in (("base", base, None), ("ur4rec", augmented, groups)):
        opt = make_optimizer(model, cfg, g)
        params_list = [p for group in opt.param_groups for p in group["params"]]
        runs[name] = (lambda m=model, o=opt, p=params_list: train_epoch(m, o, data, cfg, 0, p))
    base_s, aug_s = best_of(repeats, runs["base"], runs["ur4rec"])
    per_epoch = len(full) / n
    return {"backbone": backbone, "samples_timed": n, "train_samples": len(full),
            "base_epoch_s": base_s * per_epoch, "ur4rec_epoch_s": aug_s * per_epoch, "ratio": aug_s / base_s}


def bench_pretrain(root: Path, backbone: str, params: dict, batches: int) -> dict:
    from ur4rec.encode.store import EmbeddingStore
    from ur4rec.retriever.build import build_retriever, count_users
    from ur4rec.retriever.config import retriever_config
    from ur4rec.retriever.negatives import NegativeSampler
    from ur4rec.retriever.pretrain import PretrainTensors, _train_epoch
    from ur4rec.retriever.variants import variant_config
    from ur4rec.train.batch import RerankData
    from ur4rec.train.run import run_context

    rcfg, vcfg = retriever_config(params), variant_config(params, "ur4rec")
    ctx = run_context(DATASET, backbone, "ur4rec", params, root=root)
    z_history = rcfg.for_backbone(backbone).z_history
    full = ctx.load_split("train", z_history)
    n = min(len(full), batches * rcfg.pretrain.batch_size)
    subset = RerankData(full.user_ids[:n], full.history[:n], full.candidates[:n], full.target_pos[:n], full.sample_ids[:n])
    store = EmbeddingStore(ctx.paths.emb)
    n_users, n_items = count_users(ctx.paths.prepared), ctx.catalog.n_items
    data = PretrainTensors(
        h_table=ctx.build_backbone().item_repr(torch.arange(n_items + 1)).detach(),
        user_table=store.table("user_pref", n_users + 1), item_table=store.table("item_know", n_items + 1),
        train=subset, valid=subset,
        sampler=NegativeSampler.from_interactions(ctx.paths.prepared / "interactions.parquet", n_items))
    retriever = build_retriever(rcfg, vcfg, backbone, data.h_table.shape[1], store.dim)
    optimizer = torch.optim.AdamW(retriever.parameters(), lr=rcfg.pretrain.lr)
    started = time.perf_counter()
    _train_epoch(retriever, optimizer, data, rcfg.pretrain, tuple(vcfg.objectives), z_history, 0, rcfg.arch.bf16, False)
    seconds = time.perf_counter() - started
    return {"backbone": backbone, "samples": n, "seconds": seconds, "samples_per_second": n / seconds,
            "full_epoch_s": len(full) / (n / seconds), "K": retriever.n_proxies, "z_keys": 1 + z_history}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["prm", "gru4rec"])
    parser.add_argument("--batches", type=int, default=12, help="training batches timed per contender")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--widths", choices=("default", "paper"), default="default")
    args = parser.parse_args()
    if not (SHARED / DATASET).exists() and not (REPO / "data" / DATASET / "prepared").exists():
        print(f"skipped: real dataset {DATASET!r} not found under {SHARED} (set UR4REC_SHARED_DATA)")
        return
    torch.set_num_threads(args.threads)
    from ur4rec.config import load_params
    from ur4rec.retriever.config import retriever_config

    overrides = ["train.progress=false"]
    if args.widths == "paper":
        overrides += [f"backbone.{bb}.dim=768" for bb in args.backbones] + list(PAPER_RETRIEVER)
    params = load_params(REPO / "params.yaml", overrides)
    for bb in args.backbones:  # a checkout without backbone blocks times the backbones' defaults
        params.setdefault("backbone", {}).setdefault(bb, {})
    rcfg = retriever_config(params)
    out: dict = {"threads": args.threads, "cpu": _cpu(), "widths": args.widths, "n_layers": rcfg.arch.n_layers,
                 "bf16": rcfg.arch.bf16, "backbone_dims": {bb: params["backbone"][bb].get("dim") for bb in args.backbones}}
    with tempfile.TemporaryDirectory() as tmp:
        root = prepared_root(Path(tmp))
        out["fast_path"] = [
            bench_fast_path(rcfg, 8, 10, 100, args.repeats, bf16=rcfg.arch.bf16),
            bench_fast_path(rcfg, 16, 150, 100, args.repeats, bf16=rcfg.arch.bf16),
        ]
        out["joint_epoch"] = [bench_joint_epoch(root, bb, params, args.batches, args.repeats) for bb in args.backbones]
        out["pretrain"] = [bench_pretrain(root, bb, params, args.batches) for bb in args.backbones]
    report(out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / ("retriever.json" if args.widths == "default" else "retriever-paper.json")
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


def report(out: dict) -> None:
    print(f"retriever: {out['n_layers']} layers, bf16={out['bf16']}, widths={out['widths']} "
          f"(backbone dims {out['backbone_dims']}), {out['threads']} threads, {out['cpu']}")
    for r in out["fast_path"]:
        print(f"fast path  K={r['K']:>2} Z={r['z_keys']:>3} C={r['candidates']}: fast {r['fast_s'] * 1e3:7.1f} ms, "
              f"per-item {r['per_item_s'] * 1e3:7.1f} ms  -> {r['speedup']:.1f}x faster; max |diff| {r['max_abs_diff_fp32']:.1e}")
    for r in out["joint_epoch"]:
        print(f"epoch      {r['backbone']:<8} Base {r['base_epoch_s']:7.1f} s, UR4Rec {r['ur4rec_epoch_s']:7.1f} s "
              f"-> ratio {r['ratio']:.2f}x (target <= 1.5x)")
    for r in out["pretrain"]:
        print(f"pretrain   {r['backbone']:<8} {r['samples_per_second']:7.1f} samples/s (K={r['K']}, Z={r['z_keys']}), "
              f"full epoch ~{r['full_epoch_s']:.0f} s")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" x{os.cpu_count()}"
    except OSError:
        pass
    return f"{os.cpu_count()} cores"


if __name__ == "__main__":
    sys.exit(main())
