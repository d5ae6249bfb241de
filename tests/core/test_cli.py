"""The CLI and the stages share one error boundary: a user's mistake is one line, a bug a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import REPO_ROOT
from ur4rec.cli.app import app
from ur4rec.cli.boundary import boundary
from ur4rec.cli.doctor import collect
from ur4rec.data.schema import DataFormatError


def test_doctor_reports_packaged_models_torch_and_the_params():
    rows = {name: (ok, detail) for name, ok, detail in collect()}
    assert rows["torch"][0]
    assert rows["packaged encoder (MiniLM)"][0], rows["packaged encoder (MiniLM)"][1]
    assert rows["packaged LLM (SmolLM2)"][1].endswith(".gguf")
    result = CliRunner().invoke(app, ["doctor", "--params", str(REPO_ROOT / "params.yaml")])
    assert result.exit_code == 0 and "vllm" in result.output and "params" in result.output


def test_doctor_fails_on_a_broken_params_file(tmp_path):
    broken = tmp_path / "params.yaml"
    broken.write_text((REPO_ROOT / "params.yaml").read_text().replace("domain: product", "domain: magazine", 1))
    result = CliRunner().invoke(app, ["doctor", "--params", str(broken)])
    assert result.exit_code == 1 and "'magazine' has no item template" in result.output


def test_help_lists_one_door_per_verb():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("doctor", "prepare", "generate", "encode", "train", "pretrain", "evaluate", "report", "reference",
                    "dag"):
        assert command in result.output
    assert "train-aug" not in result.output and "evaluate-aug" not in result.output


def _boundary_exit(exc: BaseException, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        with boundary():
            raise exc
    return exit_info.value.code, capsys.readouterr().err


def test_expected_failures_are_one_line(capsys):
    code, err = _boundary_exit(DataFormatError("u.data:12: user id -3 is negative\nfix the file"), capsys)
    assert code == 1 and err == "error: u.data:12: user id -3 is negative fix the file\n"
    code, err = _boundary_exit(FileNotFoundError("data/x/prepared/train.parquet: missing"), capsys)
    assert code == 1 and err.count("\n") == 1
    code, err = _boundary_exit(OSError(28, "No space left on device"), capsys)
    assert code == 1 and "disk full" in err and err.count("\n") == 1


def test_a_bug_keeps_its_traceback_and_says_where_to_report(capsys):
    code, err = _boundary_exit(ZeroDivisionError("division by zero"), capsys)
    assert code == 2 and "Traceback" in err and "ZeroDivisionError" in err and "please report it" in err


@pytest.mark.slow
def test_cli_and_stage_print_one_line_for_an_unknown_dataset(tmp_path):
    cli = subprocess.run([str(Path(sys.executable).parent / "ur4rec"), "prepare", "--dataset", "nope",
                          "--params", str(REPO_ROOT / "params.yaml")], capture_output=True, text=True, cwd=tmp_path)
    assert cli.returncode != 0 and "Traceback" not in cli.stderr
    assert "unknown dataset 'nope'" in cli.stderr and cli.stderr.strip().count("\n") == 0
    stage = subprocess.run([sys.executable, str(REPO_ROOT / "stages" / "prepare.py"), "nope"], capture_output=True,
                           text=True, cwd=REPO_ROOT)
    assert stage.returncode == 1 and stage.stderr.strip() == (
        "error: unknown dataset 'nope': params `dataset:` defines " + stage.stderr.split("defines ", 1)[1].strip())
