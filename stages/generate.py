"""DVC stage `generate@<dataset>`: data/<dataset>/prepared/ -> data/<dataset>/llm/ (via the shared LLM cache)."""

from ur4rec.runs import generation
from ur4rec.cli.boundary import stage_main
from ur4rec.runs.text_settings import load_text_settings

if __name__ == "__main__":
    stage_main(generation.generate, "DATASET", load_text_settings)
