"""`auto` precision: bf16 only where the hardware has it, and the LLM cache key names what actually ran."""

import pytest
import torch

from ur4rec import precision
from ur4rec.retriever.augment import maybe_bf16


@pytest.fixture
def cpu(monkeypatch):
    """Pretend to be a CPU machine with or without native bf16."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def set_native(native: bool) -> None:
        monkeypatch.setattr(precision, "cpu_native_bf16", lambda: native)
    return set_native


def test_auto_is_bf16_only_where_native(cpu):
    cpu(True)
    assert precision.llm_dtype("auto") == "bfloat16" and precision.native_bf16("cpu")
    cpu(False)
    assert precision.llm_dtype("auto") == "float32" and not precision.native_bf16("cpu")
    assert precision.llm_dtype("bfloat16") == "bfloat16"  # an explicit setting is obeyed


def test_the_retriever_autocasts_only_where_bf16_is_native(cpu):
    x = torch.randn(4, 8)
    w = torch.randn(8, 8)
    cpu(False)
    with maybe_bf16("auto", x.device):
        assert (x @ w).dtype == torch.float32
    with maybe_bf16(True, x.device):  # pinned on: obeyed even where emulated
        assert (x @ w).dtype == torch.bfloat16
    cpu(True)
    with maybe_bf16("auto", x.device):
        assert (x @ w).dtype == torch.bfloat16


def test_the_llm_cache_key_holds_the_resolved_precision(cpu, tmp_path):
    from ur4rec.llm.backends.base import Backend
    from ur4rec.llm.config import LLMConfig
    from ur4rec.llm.models import ResolvedModel

    class Probe(Backend):
        name = "probe"

        def render(self, messages):
            return ""

        def generate(self, requests):
            return iter(())

    probe = Probe.__new__(Probe)
    probe.cfg, probe.model = LLMConfig(dtype="auto"), ResolvedModel("m", "m", "gguf@abc")
    cpu(False)
    assert probe.model_identity == "gguf@abc|float32"
    cpu(True)
    assert probe.model_identity == "gguf@abc|bfloat16"


def test_this_machine_reads_its_flags():
    flags = open("/proc/cpuinfo").read().split()
    assert precision.cpu_native_bf16() == any(f in flags for f in precision.NATIVE_BF16_FLAGS)


def test_the_encoder_resolves_auto_and_its_fingerprint_says_what_ran(cpu):
    from ur4rec.encode.config import EncoderConfig

    cpu(False)
    assert EncoderConfig(dtype="auto").resolved_dtype == "fp32" and EncoderConfig(dtype="auto").torch_dtype == torch.float32
    cpu(True)
    assert EncoderConfig(dtype="auto").resolved_dtype == "bf16"
    assert EncoderConfig(dtype="fp16").resolved_dtype == "fp16"
