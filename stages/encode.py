"""DVC stage `encode@<dataset>`: frozen-encoder vectors of LLM and raw texts into data/<dataset>/emb/."""

from ur4rec.runs import encoding
from ur4rec.cli.boundary import stage_main
from ur4rec.runs.text_settings import load_text_settings

if __name__ == "__main__":
    stage_main(encoding.encode, "DATASET", load_text_settings)
