"""DVC stage `generate@<dataset>`: data/<dataset>/prepared/ -> data/<dataset>/llm/ (via the shared LLM cache)."""

import sys

from ur4rec.config import load_params
from ur4rec.llm.generate import generate_dataset

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python stages/generate.py DATASET")
    generate_dataset(load_params(), sys.argv[1])
