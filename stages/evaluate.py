"""DVC stages `evaluate@<dataset>-<backbone>-<seed>` (Base) and `evaluate_aug@<dataset>-<backbone>-<variant>-<seed>`:
a run's best checkpoint -> its test metrics in data/<ds>/runs/<backbone>/<arm>/seed<k>/eval."""

import sys

from ur4rec.runs import evaluation
from ur4rec.runs.spec import RunSpec
from ur4rec.cli.boundary import stage_main


def evaluate_base(settings, dataset: str, backbone: str, seed: str) -> None:
    evaluation.evaluate(settings, RunSpec(dataset, backbone, None, int(seed)))


def evaluate_arm(settings, dataset: str, backbone: str, variant: str, seed: str) -> None:
    evaluation.evaluate(settings, RunSpec(dataset, backbone, variant, int(seed)))


if __name__ == "__main__":
    if len(sys.argv) == 4:
        stage_main(evaluate_base, "DATASET BACKBONE SEED")
    else:
        stage_main(evaluate_arm, "DATASET BACKBONE VARIANT SEED")
