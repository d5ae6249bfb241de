"""DVC stage `pretrain@<dataset>-<backbone>-<variant>-<seed>`: the variant's retriever pre-training (or its
no-op marker) -> data/<ds>/runs/<backbone>/<variant>/seed<k>/pretrain."""

from ur4rec.runs import training
from ur4rec.runs.spec import RunSpec
from ur4rec.cli.boundary import stage_main


def pretrain(settings, dataset: str, backbone: str, variant: str, seed: str) -> None:
    training.pretrain(settings, RunSpec(dataset, backbone, variant, int(seed)))


if __name__ == "__main__":
    stage_main(pretrain, "DATASET BACKBONE VARIANT SEED")
