"""DVC stage `report@<dataset>`: tables, statistics and plots over every evaluated run -> data/report/<dataset>/."""

from ur4rec.runs import reporting
from ur4rec.cli.boundary import stage_main
from ur4rec.runs.settings import load_settings


def report(settings, dataset: str) -> None:
    reporting.report(settings, dataset)
    print(f"report written to data/report/{dataset}/results.md")


if __name__ == "__main__":
    stage_main(report, "DATASET", load_settings)
