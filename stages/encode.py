"""DVC stage `encode@<dataset>`: frozen-encoder vectors of LLM and raw texts into data/<dataset>/emb/."""

from ur4rec.runs import encoding
from ur4rec.cli.boundary import stage_main

if __name__ == "__main__":
    stage_main(encoding.encode, "DATASET")
