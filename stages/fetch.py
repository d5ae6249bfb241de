"""DVC stage `fetch@<dataset>`: raw files into data/raw/<dataset>/ (mirror copy or verified download)."""

import sys

from ur4rec.config import load_params
from ur4rec.data.fetch import fetch_from_params

if __name__ == "__main__":
    fetch_from_params(load_params(), sys.argv[1])
