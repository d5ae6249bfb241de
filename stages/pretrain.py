"""DVC stage `pretrain@<dataset>-<backbone>-<variant>`: the retriever's pre-training (or its no-op marker)
-> data/<ds>/runs/<backbone>/<variant>/pretrain/."""

import sys

from ur4rec.config import load_params
from ur4rec.retriever.pretrain import run_pretrain

if __name__ == "__main__":
    run_pretrain(sys.argv[1], sys.argv[2], sys.argv[3], load_params())
