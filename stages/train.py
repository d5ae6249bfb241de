"""DVC stage `train@<dataset>-<backbone>-<seed>`: the Base run -> data/<ds>/runs/<backbone>/seed<k>/base/train."""

from ur4rec.runs import training
from ur4rec.runs.spec import RunSpec
from ur4rec.cli.boundary import stage_main
from ur4rec.runs.settings import load_settings
from ur4rec.cli.launch import distribute


def train_base(settings, dataset: str, backbone: str, seed: str) -> None:
    distribute(settings.train.distributed.nproc)
    training.train(settings, RunSpec(dataset, backbone, None, int(seed)))


if __name__ == "__main__":
    stage_main(train_base, "DATASET BACKBONE SEED", load_settings)
