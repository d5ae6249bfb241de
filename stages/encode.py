"""DVC stage `encode@<dataset>`: frozen-encoder vectors of LLM and raw texts into data/<dataset>/emb/."""

import sys

from ur4rec.config import load_params
from ur4rec.encode.encode import encode_dataset

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python stages/encode.py DATASET")
    encode_dataset(sys.argv[1], load_params())
