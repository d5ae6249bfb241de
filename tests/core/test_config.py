from dataclasses import dataclass, field

import pytest

from ur4rec.config import (
    ParamsError,
    apply_override,
    get_path,
    load_params,
    merged,
    section,
)


def test_overrides_parse_yaml_values_and_create_paths(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 0.1\n  epochs: 3\ndatasets: [a]\n")
    params = load_params(path, ["train.lr=1e-3", "datasets=[b, c]", "new.deep.key=true"])
    assert params["train"] == {"lr": 1e-3, "epochs": 3}
    assert params["datasets"] == ["b", "c"]
    assert params["new"]["deep"]["key"] is True


@pytest.mark.parametrize("bad", ["no_equals", "=1", "train.lr.x=1"])
def test_bad_overrides_name_the_override(tmp_path, bad):
    params = {"train": {"lr": 0.1}}
    with pytest.raises(ParamsError, match="override"):
        apply_override(params, bad)


def test_missing_file_and_bad_yaml_name_the_file(tmp_path):
    with pytest.raises(ParamsError, match="nope.yaml"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ParamsError, match="bad.yaml"):
        load_params(bad)


@dataclass
class Inner:
    width: int = 4


@dataclass
class Outer:
    lr: float = 0.1
    layers: list[int] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)
    name: str | None = None


def test_section_builds_nested_typed_config_and_coerces():
    cfg = section(Outer, {"lr": "1e-4", "layers": [1, 2.0], "inner": {"width": 8}})
    assert cfg.lr == pytest.approx(1e-4) and isinstance(cfg.lr, float)
    assert cfg.layers == [1, 2] and all(isinstance(v, int) for v in cfg.layers)
    assert cfg.inner == Inner(width=8)


def test_section_rejects_unknown_keys_and_bad_types():
    with pytest.raises(ParamsError, match="unknown parameter.*'lrr'"):
        section(Outer, {"lrr": 1})
    with pytest.raises(ParamsError, match="inner.width"):
        section(Outer, {"inner": {"width": "wide"}})


def test_get_path_and_merged():
    params = {"a": {"b": {"c": 1}}}
    assert get_path(params, "a.b.c") == 1
    assert get_path(params, "a.x", default=None) is None
    with pytest.raises(ParamsError, match="a.x"):
        get_path(params, "a.x")
    assert merged({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}
