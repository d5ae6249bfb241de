"""DVC stage `fetch@<dataset>`: raw files into data/raw/<dataset>/ (mirror copy or verified download)."""

from ur4rec.runs import data
from ur4rec.cli.boundary import stage_main
from ur4rec.runs.data_settings import load_data_settings

if __name__ == "__main__":
    stage_main(data.fetch, "DATASET", load_data_settings)
