"""The orchestration layer: the only place that prepares, generates, encodes, trains, pre-trains, evaluates
and reports. Stages, the CLI and the benchmarks call these functions and nothing below them.

    from ur4rec.runs.settings import load_settings
    from ur4rec.runs.spec import RunSpec
    from ur4rec.runs.training import pretrain, train
    from ur4rec.runs.evaluation import evaluate

    s = load_settings("params.yaml")
    train(s, RunSpec("ml-100k", "prm", None, seed=0))          # the Base run
    pretrain(s, RunSpec("ml-100k", "prm", "ur4rec", seed=0))   # its retriever, against that Base
    train(s, RunSpec("ml-100k", "prm", "ur4rec", seed=0))      # joint training from that Base
    evaluate(s, RunSpec("ml-100k", "prm", "ur4rec", seed=0))

Modules: `settings` (the whole params file, typed and checked), `spec` (what a run is), `model` (the model of
a run), `training` (train, pretrain), `evaluation` (the test split), `data` (fetch, prepare), `generation`, `encoding`,
`reporting`. This package imports nothing itself, so each stage's code deps are only what it uses.
"""
