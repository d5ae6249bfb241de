"""DVC stage `evaluate@<dataset>-<backbone>-<seed>`: the best checkpoint of the Base run and of every variant
-> their test metrics in data/<ds>/runs/<backbone>/seed<k>/eval/<arm>/ and seed<k>/metrics.json."""

from ur4rec.runs import evaluation
from ur4rec.cli.boundary import stage_main
from ur4rec.runs.settings import load_settings


def evaluate(settings, dataset: str, backbone: str, seed: str) -> None:
    evaluation.evaluate_seed(settings, dataset, backbone, int(seed))


if __name__ == "__main__":
    stage_main(evaluate, "DATASET BACKBONE SEED", load_settings)
