"""DVC stage `train@<dataset>-<backbone>`: prepared samples -> data/<ds>/runs/<backbone>/base/{train,dvclive}."""

import sys

from ur4rec.config import load_params
from ur4rec.train.run import train_base

if __name__ == "__main__":
    train_base(sys.argv[1], sys.argv[2], load_params())
