"""An OpenAI backend never sends a request without a key unless the params say the server has no authentication."""

from __future__ import annotations

import pytest

from tests.llm.helpers import llm_params
from ur4rec.llm.backends import GenerationError, make_backend
from ur4rec.llm.config import llm_config


def test_an_unset_key_variable_stops_before_any_request(tiny_llama, monkeypatch):
    monkeypatch.delenv("UR4REC_UNSET_KEY", raising=False)
    backend = make_backend(llm_config(llm_params(tiny_llama, "openai", "llm.openai.api_key_env=UR4REC_UNSET_KEY")))
    with pytest.raises(GenerationError, match="UR4REC_UNSET_KEY.*llm.openai.keyless=true") as info:
        backend.api_key()
    assert "\n" not in str(info.value)


def test_the_key_comes_from_its_variable_and_keyless_is_an_explicit_choice(tiny_llama, monkeypatch):
    monkeypatch.setenv("UR4REC_SET_KEY", "sk-test")
    assert make_backend(llm_config(llm_params(tiny_llama, "openai", "llm.openai.api_key_env=UR4REC_SET_KEY"))).api_key() == "sk-test"
    keyless = make_backend(llm_config(llm_params(tiny_llama, "openai", "llm.openai.keyless=true")))
    assert keyless.api_key() == "EMPTY"  # what the client library sends to a server without authentication
