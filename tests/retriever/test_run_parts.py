"""A run's parts without training it: `prepare_run` and the pre-training pieces are what `train` and
`pretrain` use, so a benchmark timing them times the real runs."""

import numpy as np
import torch
from safetensors.torch import load_file

from ur4rec.runs.model import build_model, catalog_of
from ur4rec.runs.spec import RunSpec
from ur4rec.runs.training import RunParts, prepare_run, pretrain_config, pretrain_task, train
from ur4rec.train.loop import fit
from ur4rec.train.rerank import predict


def test_prepare_run_builds_what_training_builds(tiny_project):
    root, s = tiny_project
    spec = RunSpec("fx", "prm", "ur4rec-no-pretrain", 0)
    parts = prepare_run(s, spec, root)
    assert isinstance(parts, RunParts)
    assert parts.cfg == s.train_config("prm", 0, joint=True)
    assert parts.history_len == s.resolve(spec, root).history_len == parts.task.train.history.shape[1]
    torch.manual_seed(0)
    model, groups = build_model(s.resolve(spec, root), catalog_of(s.resolve(spec, root)), training=True)
    assert [[tuple(p.shape) for p in g["params"]] for g in parts.groups] == \
        [[tuple(p.shape) for p in g["params"]] for g in groups]
    valid = parts.task.valid
    assert np.allclose(predict(parts.model, valid), predict(model, valid), atol=1e-6)


def test_train_fits_exactly_the_prepared_parts(tiny_project, tmp_path):
    root, s = tiny_project
    spec = RunSpec("fx", "prm", "control", 0)
    train(s, spec, root)
    parts = prepare_run(s, spec, root)
    fit(parts.model, parts.task, parts.cfg, tmp_path, parts.groups)
    trained = load_file(str(spec.paths(root).train / "model.safetensors"))
    again = load_file(str(tmp_path / "model.safetensors"))
    assert trained.keys() == again.keys() and all(torch.equal(trained[k], again[k]) for k in trained)


def test_pretrain_task_takes_h_from_a_given_base(tiny_project):
    root, s = tiny_project
    spec = RunSpec("fx", "prm", "ur4rec", 0)
    base = prepare_run(s, spec.base(), root).model
    task, _ = pretrain_task(s, spec, root, base=base)
    n_items = catalog_of(s.resolve(spec, root)).n_items
    with torch.no_grad():
        expected = base.item_repr(torch.arange(n_items + 1)).float()
    assert torch.equal(task.data.h_table, expected)
    from_checkpoint, _ = pretrain_task(s, spec, root)
    assert not torch.equal(from_checkpoint.data.h_table, expected)  # the trained Base differs from a fresh one
    cfg = pretrain_config(s.resolve(RunSpec("fx", "prm", "ur4rec", 3), root))
    assert (cfg.seed, cfg.lr, cfg.batch_size) == (3, s.retriever.pretrain.lr, s.retriever.pretrain.batch_size)
