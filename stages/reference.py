"""DVC stage `reference@<dataset>`: TopPop and item-CF on the prepared valid and test lists -> data/<ds>/reference/
and data/<ds>/reference.json (the report's reference rows)."""

from ur4rec.runs import reference
from ur4rec.cli.boundary import stage_main
from ur4rec.runs.settings import load_settings


def score(settings, dataset: str) -> None:
    reference.score_references(settings, dataset)


if __name__ == "__main__":
    stage_main(score, "DATASET", load_settings)
