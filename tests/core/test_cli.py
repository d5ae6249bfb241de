from typer.testing import CliRunner

from ur4rec.cli import app
from ur4rec.cli.doctor import collect


def test_doctor_reports_packaged_models_and_torch():
    rows = {name: (ok, detail) for name, ok, detail in collect()}
    assert rows["torch"][0]
    assert rows["packaged encoder (MiniLM)"][0], rows["packaged encoder (MiniLM)"][1]
    assert rows["packaged LLM (SmolLM2)"][1].endswith(".gguf")
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0 and "vllm" in result.output


def test_help_lists_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "doctor" in result.output
