"""DVC stage `pretrain@<dataset>-<backbone>-<variant>-<seed>`: the variant's retriever pre-training (or its
no-op marker) -> data/<ds>/runs/<backbone>/<variant>/seed<k>/pretrain."""

from ur4rec.runs import training
from ur4rec.runs.spec import RunSpec
from ur4rec.cli.boundary import stage_main
from ur4rec.cli.launch import distribute


def pretrain(settings, dataset: str, backbone: str, variant: str, seed: str) -> None:
    spec = RunSpec(dataset, backbone, variant, int(seed))
    distribute(training.pretrain_processes(settings, spec))
    training.pretrain(settings, spec)


if __name__ == "__main__":
    stage_main(pretrain, "DATASET BACKBONE VARIANT SEED")
