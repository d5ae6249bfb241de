"""DVC stage `prepare@<dataset>`: data/raw/<dataset>/ -> data/<dataset>/prepared/."""

import sys

from ur4rec.config import load_params
from ur4rec.data.prepare import prepare_dataset

if __name__ == "__main__":
    prepare_dataset(load_params(), sys.argv[1])
