"""Retriever speed on real MovieLens-100K lists, each measurement side by side in one run.

  fast path   eq. 9 with all C candidates in one [P; h_1..h_C] pass (mask (c)) vs one [P; h_i] pass per
              candidate (batched as B·C sequences), forward + backward, and their max output difference, on the
              retriever of the run's model
  joint epoch the UR4Rec run vs the Base run of the backbone, each built by the runs layer (`prepare_run`) and
              trained by the loop's `train_epoch` over the first `--batches` batches of its own task (target:
              ratio <= 1.5x, paper: "close to")
  pretrain    pre-training throughput (pairs/s) with both objectives, on the run's pre-training task
  kernels     the UR4Rec joint epoch with the retriever's own attention and dropout kernels (mask (c) attended
              over each item's K + 1 keys; dropout masks from 16-bit draws) vs the reference ones
              (`scaled_dot_product_attention` over the dense mask with `dropout_p`, `F.dropout`), same model
  floor       where a UR4Rec joint step goes (torch.profiler: the matrix products' share of CPU time) and the
              retriever's multiply-adds per list counted from its shapes, split into the part eq. 9 computes
              per (user, candidate) pair (cross-attention output, FFN: no cache can share it) and the part that
              depends on the item or the user alone; the lower bound of the epoch ratio if everything
              shareable cost nothing

The joint arm is `ur4rec-no-pretrain`: the UR4Rec model without the pre-trained weights, which a benchmark has
no time to produce (the speed does not depend on the weights); for the same reason the joint run does not
warm-start and pre-training takes h_i from a fresh Base. The data are real ml-100k lists, prepared and encoded
by the stages (the LLM texts stand in as failed generations, so the vectors are those of the raw texts). Timings
alternate the contenders and keep the best of `--repeats`, since a shared CPU is noisy.

    python bench/bench_retriever.py [--backbones prm gru4rec] [--batches 12] [--repeats 3] [--threads 2]
                                    [--widths default|paper] [--layers N] [--parts joint_epoch floor ...]

`--widths paper` times the paper's widths instead of the CPU defaults: backbones of dim 768 and a BERT-base
shaped retriever block (768 wide, 12 heads, FFN 3072, random weights since no checkpoint ships offline). The
ratio is mostly retriever FLOPs over backbone FLOPs per candidate, so it depends on these widths. `--layers`
sets `retriever.arch.n_layers` (default: params, 1; the paper: 12).

Prints a table with ratios and writes bench/results/retriever.json (retriever-paper.json with --widths paper).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

import torch

from common import (FirstBatches, best_of, epoch_runner, machine, missing, prepare, settings, stand_in_generations,
                    write_result)

DATASET = "ml-100k"
JOINT_ARM = "ur4rec-no-pretrain"
# A BERT-base shaped retriever block (the paper initialises from bert-base-uncased, which is not offline here).
PAPER_RETRIEVER = ("retriever.arch.init_checkpoint=none", "retriever.arch.width=768", "retriever.arch.n_heads=12",
                   "retriever.arch.ffn_dim=3072")


def overrides(args) -> list[str]:
    out = ["train.progress=false", f"train.threads={args.threads}", f"retriever.joint.threads={args.threads}",
           f"encoder.threads={args.threads}", "retriever.joint.warm_start=false"]
    if args.widths == "paper":
        out += [f"backbone.{bb}.dim=768" for bb in args.backbones] + list(PAPER_RETRIEVER)
    if args.layers:
        out.append(f"retriever.arch.n_layers={args.layers}")
    return out


def prepared_root(s, root: Path) -> Path:
    """ml-100k prepared and encoded by the stages into `root`."""
    from ur4rec.runs import encoding as texts

    prepare(s, DATASET, root)
    stand_in_generations(root, DATASET)
    texts.encode(s, DATASET, root, progress=False)
    return root


def bench_fast_path(s, backbone: str, root: Path, repeats: int) -> dict:
    from ur4rec.retriever.augment import maybe_bf16
    from ur4rec.runs.spec import RunSpec
    from ur4rec.runs.encoding import embedding_store
    from ur4rec.runs.training import prepare_run

    run = prepare_run(s, RunSpec(DATASET, backbone, JOINT_ARM, 0), root)
    retriever, bf16 = run.model.augmenter.retriever, s.retriever.arch.bf16
    b, z_keys, n_candidates = 8, 1 + s.per_backbone(backbone).z_history, run.task.train.n_candidates
    g = torch.Generator().manual_seed(0)
    h = torch.randn(b, n_candidates, s.backbone_spec(backbone).config.dim, generator=g)
    z = torch.randn(b, z_keys, embedding_store(DATASET, root).dim, generator=g)
    mask = torch.ones(b, z_keys, dtype=torch.bool)

    def step(fn):
        def go():
            retriever.zero_grad(set_to_none=True)
            with maybe_bf16(bf16, h.device):  # as the augmenter runs it ("auto": where bf16 is native)
                out = fn(h, z, mask)
            out.float().square().mean().backward()
        return go

    with torch.no_grad():
        retriever.eval()
        diff = (retriever.augment(h, z, mask) - retriever.augment_per_item(h, z, mask)).abs().max().item()
        retriever.train()
    fast, per_item = best_of(repeats, step(retriever.augment), step(retriever.augment_per_item))
    return {"backbone": backbone, "K": retriever.n_proxies, "z_keys": z_keys, "candidates": n_candidates, "batch": b,
            "bf16": bf16, "fast_s": fast, "per_item_s": per_item, "speedup": per_item / fast,
            "max_abs_diff_fp32": diff}


def bench_joint_epoch(s, backbone: str, root: Path, batches: int, repeats: int) -> dict:
    from ur4rec.runs.spec import RunSpec
    from ur4rec.runs.training import prepare_run

    runs, timers = {}, []
    for arm in (None, JOINT_ARM):
        run = prepare_run(s, RunSpec(DATASET, backbone, arm, 0), root)
        runs[arm] = run
        timers.append(epoch_runner(run.model, run.groups, FirstBatches(run.task, batches), run.cfg))
    base_s, aug_s = best_of(repeats, *timers)
    full = runs[None].task
    n = min(batches * runs[None].cfg.batch_size, full.n_train)
    per_epoch = full.n_train / n
    return {"backbone": backbone, "arm": JOINT_ARM, "samples_timed": n, "train_samples": full.n_train,
            "history_len": {"base": runs[None].history_len, "ur4rec": runs[JOINT_ARM].history_len},
            "base_epoch_s": base_s * per_epoch, "ur4rec_epoch_s": aug_s * per_epoch, "ratio": aug_s / base_s}


@contextlib.contextmanager
def reference_kernels():
    """The retriever on torch's own attention and dropout, the kernels its own ones replace."""
    import torch.nn.functional as F

    from ur4rec.retriever import attention_masks
    from ur4rec.retriever import model as m

    def attend(q, k, v, mask, p):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)

    def items_see_proxies(q, k, v, n_proxies, p):
        mask = attention_masks.proxies_and_items(n_proxies, q.shape[2] - n_proxies).to(q.device)
        return attend(q, k, v, mask, p)

    saved = m.dropout, m._attend, m._items_see_proxies
    m.dropout, m._attend, m._items_see_proxies = F.dropout, attend, items_see_proxies
    try:
        yield
    finally:
        m.dropout, m._attend, m._items_see_proxies = saved


def bench_kernels(s, backbone: str, root: Path, batches: int, repeats: int) -> dict:
    from ur4rec.runs.spec import RunSpec
    from ur4rec.runs.training import prepare_run

    run = prepare_run(s, RunSpec(DATASET, backbone, JOINT_ARM, 0), root)
    epoch = epoch_runner(run.model, run.groups, FirstBatches(run.task, batches), run.cfg)

    def reference():
        with reference_kernels():
            return epoch()

    own_s, reference_s = best_of(repeats, epoch, reference)
    per_epoch = run.task.n_train / min(batches * run.cfg.batch_size, run.task.n_train)
    return {"backbone": backbone, "arm": JOINT_ARM, "own_epoch_s": own_s * per_epoch,
            "reference_epoch_s": reference_s * per_epoch, "speedup": reference_s / own_s}


def bench_pretrain(s, backbone: str, root: Path, batches: int) -> dict:
    from ur4rec.runs.spec import RunSpec
    from ur4rec.runs.training import prepare_run, pretrain_config, pretrain_task

    spec = RunSpec(DATASET, backbone, "ur4rec", 0)
    cfg = pretrain_config(s.resolve(spec, root))
    base = prepare_run(s, spec.base(), root).model
    task, retriever = pretrain_task(s, spec, root, base=base)
    cut = FirstBatches(task, batches)
    seconds = best_of(1, epoch_runner(retriever, None, cut, cfg))[0]
    n = min(batches * cfg.batch_size, task.n_train)
    return {"backbone": backbone, "samples": n, "seconds": seconds, "samples_per_second": n / seconds,
            "full_epoch_s": task.n_train / (n / seconds), "K": retriever.n_proxies, "z_keys": 1 + task.z_history}


def retriever_macs(width: int, ffn: int, k: int, c: int, z: int) -> dict[str, float]:
    """Multiply-adds of one retriever block's forward pass for one list (K proxies, C candidates, Z keys):
    `pair` is computed per (user, candidate) and cannot be shared; `shareable` depends on the item alone (in the
    first block, the default's only one: its projections, its self-attention over the item-blind proxies, its
    cross-attention query; training's per-position dropout makes the query per pair, so this bound is loose
    there) or on the user alone (Z's keys and values, the proxies' whole pass)."""
    w2 = width * width
    pair = c * (w2 + 2 * width * ffn + 2 * z * width)  # cross-attention output projection, FFN, scores + values
    shareable = c * (4 * w2 + 2 * (k + 1) * width + w2) + 2 * z * w2 + k * (6 * w2 + 2 * (k + z) * width + 2 * width * ffn)
    return {"pair": float(pair), "shareable": float(shareable)}


def bench_floor(s, backbone: str, root: Path, batches: int) -> dict:
    from torch.profiler import ProfilerActivity, profile

    from ur4rec.runs.spec import RunSpec
    from ur4rec.runs.training import prepare_run

    run = prepare_run(s, RunSpec(DATASET, backbone, JOINT_ARM, 0), root)
    epoch = epoch_runner(run.model, run.groups, FirstBatches(run.task, batches), run.cfg)
    epoch()  # warm-up outside the profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        epoch()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    products = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"))
    retriever = run.model.augmenter.retriever
    block = retriever.blocks[0]
    macs = retriever_macs(retriever.width, block.ffn.intermediate.out_features, retriever.n_proxies,
                          run.task.train.n_candidates, 1 + s.per_backbone(backbone).z_history)
    share_pair = macs["pair"] / (macs["pair"] + macs["shareable"])
    return {"backbone": backbone, "matmul_share": products / total, "retriever_macs_per_list": macs,
            "pair_share_of_retriever_macs": share_pair, "n_layers": len(retriever.blocks)}


PARTS = {  # name -> measurement(settings, backbone, root, args)
    "fast_path": lambda s, bb, root, a: bench_fast_path(s, bb, root, a.repeats),
    "joint_epoch": lambda s, bb, root, a: bench_joint_epoch(s, bb, root, a.batches, a.repeats),
    "pretrain": lambda s, bb, root, a: bench_pretrain(s, bb, root, a.batches),
    "kernels": lambda s, bb, root, a: bench_kernels(s, bb, root, a.batches, a.repeats),
    "floor": lambda s, bb, root, a: bench_floor(s, bb, root, a.batches),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["prm", "gru4rec"])
    parser.add_argument("--batches", type=int, default=12, help="training batches timed per contender")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--widths", choices=("default", "paper"), default="default")
    parser.add_argument("--layers", type=int, default=0, help="retriever.arch.n_layers (0: params)")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS, help="measurements to take")
    args = parser.parse_args()
    s = settings(overrides(args))
    if missing(s, DATASET):
        return
    out: dict = {"widths": args.widths, "n_layers": s.retriever.arch.n_layers, "bf16": s.retriever.arch.bf16,
                 "backbone_dims": {bb: s.backbone_spec(bb).config.dim for bb in args.backbones}}
    with tempfile.TemporaryDirectory(prefix="bench-retriever-") as tmp:
        root = prepared_root(s, Path(tmp))
        for part in args.parts:
            out[part] = [PARTS[part](s, bb, root, args) for bb in args.backbones]
    out["machine"] = machine()
    report(out)
    write_result("retriever" if args.widths == "default" else "retriever-paper", out)


def report(out: dict) -> None:
    m = out["machine"]
    print(f"retriever: {out['n_layers']} layers, bf16={out['bf16']}, widths={out['widths']} "
          f"(backbone dims {out['backbone_dims']}), {m['torch_threads']} threads, {m['cpu']} x{m['cpus']}")
    for r in out.get("fast_path", []):
        print(f"fast path  {r['backbone']:<8} K={r['K']:>2} Z={r['z_keys']:>3} C={r['candidates']}: fast "
              f"{r['fast_s'] * 1e3:7.1f} ms, per-item {r['per_item_s'] * 1e3:7.1f} ms  -> {r['speedup']:.1f}x faster; "
              f"max |diff| {r['max_abs_diff_fp32']:.1e}")
    for r in out.get("joint_epoch", []):
        print(f"epoch      {r['backbone']:<8} Base {r['base_epoch_s']:7.1f} s, UR4Rec {r['ur4rec_epoch_s']:7.1f} s "
              f"-> ratio {r['ratio']:.2f}x (target <= 1.5x)")
    for r in out.get("pretrain", []):
        print(f"pretrain   {r['backbone']:<8} {r['samples_per_second']:7.1f} samples/s (K={r['K']}, Z={r['z_keys']}), "
              f"full epoch ~{r['full_epoch_s']:.0f} s")
    for r in out.get("kernels", []):
        print(f"kernels    {r['backbone']:<8} UR4Rec epoch {r['own_epoch_s']:7.1f} s with the retriever's kernels, "
              f"{r['reference_epoch_s']:7.1f} s with torch's -> {r['speedup']:.2f}x")
    ratios = {r["backbone"]: r["ratio"] for r in out.get("joint_epoch", [])}
    for r in out.get("floor", []):
        macs, pair = r["retriever_macs_per_list"], r["pair_share_of_retriever_macs"]
        # If everything shareable were free, the retriever would still cost `pair` of its multiply-adds.
        ratio = ratios.get(r["backbone"])
        floor = "" if ratio is None else f" -> epoch ratio >= {1 + (ratio - 1) * pair:.2f}x with all the rest shared"
        print(f"floor      {r['backbone']:<8} matrix products {r['matmul_share']:.0%} of a joint step's CPU time; "
              f"retriever {(macs['pair'] + macs['shareable']) / 1e6:.0f} M multiply-adds per list and block, "
              f"{pair:.0%} per (user, candidate) pair{floor}")


if __name__ == "__main__":
    main()
