"""DVC stage `generate@<dataset>`: data/<dataset>/prepared/ -> data/<dataset>/llm/ (via the shared LLM cache)."""

import sys

from ur4rec.config import load_params
from ur4rec.llm.config import dataset_domain, llm_config
from ur4rec.llm.generate import generate_dataset
from ur4rec.paths import DatasetPaths

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python stages/generate.py DATASET")
    params = load_params()
    generate_dataset(llm_config(params), dataset_domain(params, sys.argv[1]), DatasetPaths(sys.argv[1]))
