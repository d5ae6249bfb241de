"""DVC stage `pretrain@<dataset>-<backbone>-<seed>`: each variant's retriever pre-training (or its no-op
marker) against the seed's Base -> data/<ds>/runs/<backbone>/seed<k>/pretrain/<variant>/."""

from ur4rec.runs import training
from ur4rec.cli.boundary import stage_main
from ur4rec.runs.settings import load_settings
from ur4rec.cli.launch import distribute


def pretrain(settings, dataset: str, backbone: str, seed: str) -> None:
    distribute(training.pretrain_processes(settings, settings.variants))
    training.pretrain_seed(settings, dataset, backbone, int(seed))


if __name__ == "__main__":
    stage_main(pretrain, "DATASET BACKBONE SEED", load_settings)
