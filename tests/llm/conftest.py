"""Session fixtures for the LLM tests: the SmolLM2 tokenizer, tiny Llamas built from it, one prepared
fixture dataset, and one vLLM engine shared by the tests that need it (starting one costs ~30 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.llm.helpers import build_llama, llm_params, prepared_dataset
from ur4rec.llm.models import resolve_model


@pytest.fixture(scope="session")
def smollm2_dir() -> str:
    """The packaged SmolLM2 materialised as an HF folder (once per machine, in the model cache)."""
    return resolve_model("packaged:smollm2").source


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, smollm2_dir) -> Path:
    return build_llama(tmp_path_factory.mktemp("tiny-llama"), smollm2_dir)


@pytest.fixture(scope="session")
def looping_llama(tmp_path_factory, smollm2_dir) -> Path:
    return build_llama(tmp_path_factory.mktemp("looping-llama"), smollm2_dir, mode="loop")


@pytest.fixture(scope="session")
def coin_llama(tmp_path_factory, smollm2_dir) -> Path:
    return build_llama(tmp_path_factory.mktemp("coin-llama"), smollm2_dir, mode="coin")


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    return prepared_dataset(tmp_path_factory.mktemp("prepared"))


@pytest.fixture(scope="session")
def vllm_backend(tiny_llama):
    """One vLLM engine on the tiny Llama for the whole session."""
    pytest.importorskip("vllm")
    from ur4rec.llm.backends import make_backend
    from ur4rec.llm.config import llm_config

    backend = make_backend(llm_config(llm_params(tiny_llama, "vllm")))
    yield backend
    backend.close()
