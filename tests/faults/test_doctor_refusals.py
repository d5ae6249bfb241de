"""`ur4rec doctor` refuses a bad params file in one `error:` line naming the key, before any work."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.faults.conftest import assert_one_error_line, cli

pytestmark = pytest.mark.timeout(900)


@pytest.mark.parametrize("override, names", [
    ("train.select_metric=ndgc@10", "train.select_metric"),
    ("llm.sampling.max_new_tokens=-5", "llm.sampling.max_new_tokens"),
    ("llm.sampling.temperature=-1", "llm.sampling.temperature"),
    ("dataset.ml-100k.k_core=-3", "dataset.ml-100k"),
    ("train.progress=maybe", "train.progress"),
    ("prepare.n_candidates=null", "prepare.n_candidates"),
    ("llm.model=packaged:foo", "packaged:foo"),
    ("variants=[../base]", "../base"),
    ("datasets=[../../etc]", "../../etc"),
    ("llm.openai.api_key_env=", "llm.openai.keyless"),
])
def test_doctor_refuses_a_bad_override_in_one_line(override, names):
    assert_one_error_line(cli("doctor", "-S", override), names)


@pytest.mark.parametrize("section, bad", [("variant", "../base"), ("dataset", "../../etc")])
def test_doctor_refuses_a_block_named_outside_its_folder(tmp_path, section, bad):
    """A name that is only a key of its block (not listed to run) is refused too: names become folders."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params[section][bad] = next(iter(params[section].values()))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    assert_one_error_line(cli("doctor", "--params", str(path)), repr(bad))


def test_doctor_accepts_the_shipped_params():
    proc = cli("doctor")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "error:" not in proc.stderr
