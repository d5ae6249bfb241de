"""DVC stage `train_aug@<dataset>-<backbone>-<seed>`: the joint training of every variant of `variants` (the
matched control included) from the seed's Base -> data/<ds>/runs/<backbone>/seed<k>/arms/<variant>/; a
variant whose inputs are unchanged keeps its folder."""

from ur4rec.runs import training
from ur4rec.cli.boundary import stage_main
from ur4rec.runs.settings import load_settings
from ur4rec.cli.launch import distribute


def train_aug(settings, dataset: str, backbone: str, seed: str) -> None:
    distribute(settings.train.distributed.nproc)
    training.train_arms(settings, dataset, backbone, int(seed))


if __name__ == "__main__":
    stage_main(train_aug, "DATASET BACKBONE SEED", load_settings)
