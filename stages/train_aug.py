"""DVC stage `train_aug@<dataset>-<backbone>-<variant>-<seed>`: joint training of an augmented arm (or the
matched control) -> data/<ds>/runs/<backbone>/seed<k>/arms/<variant>/train."""

from ur4rec.runs import training
from ur4rec.runs.spec import RunSpec
from ur4rec.cli.boundary import stage_main
from ur4rec.cli.launch import distribute


def train_arm(settings, dataset: str, backbone: str, variant: str, seed: str) -> None:
    distribute(settings.train.distributed.nproc)
    training.train(settings, RunSpec(dataset, backbone, variant, int(seed)))


if __name__ == "__main__":
    stage_main(train_arm, "DATASET BACKBONE VARIANT SEED")
