"""DVC stage `train_aug@<dataset>-<backbone>-<variant>`: joint training of an augmented variant
-> data/<ds>/runs/<backbone>/<variant>/{train,dvclive}."""

import sys

from ur4rec.config import load_params
from ur4rec.retriever.joint import train_variant

if __name__ == "__main__":
    train_variant(sys.argv[1], sys.argv[2], sys.argv[3], load_params())
