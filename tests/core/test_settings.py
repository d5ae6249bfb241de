"""The whole params file is typed and cross-checked before any work starts."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import REPO_ROOT
from ur4rec.config import ParamsError, apply_override
from ur4rec.data.formats import FORMAT_NAMES
from ur4rec.data.registry import FORMATS
from ur4rec.llm.prompts import item_context, load_template, user_context
from ur4rec.retriever.augment import AUGMENTERS
from ur4rec.retriever.variants import KINDS
from ur4rec.runs.settings import load_settings, parse_settings
from ur4rec.runs.spec import RunSpec

SHIPPED = REPO_ROOT / "params.yaml"


def shipped(*overrides: str) -> dict:
    params = yaml.safe_load(SHIPPED.read_text())
    for item in overrides:
        apply_override(params, item)
    return params


def test_the_shipped_params_parse_and_check():
    s = load_settings(SHIPPED)
    assert s.seeds == [0] and "control" in s.variants and s.variant["control"].is_control
    assert s.backbone["dlcm-hist"].model == "dlcm" and s.backbone["dlcm-hist"].config.user_history
    assert not s.backbone["dlcm"].config.user_history
    assert s.is_leaky("ml-100k-LEAKY") and not s.is_leaky("ml-100k")


def test_every_shipped_dataset_builds_its_prompts():
    """Every configured dataset's domain has templates that render a user and an item."""
    s = load_settings(SHIPPED)
    item = {"item_id": 1, "title": 'A "quoted" {title}', "categories": ["Drama", "Sci-Fi"],
            "attributes": '{"year": 1999, "brand": "Acme"}'}
    user = {"user_id": 1, "gender": "F", "age": "25", "occupation": "writer", "llm_history": [1],
            "llm_history_ratings": [4.0]}
    user_template = load_template(REPO_ROOT / s.llm.templates.user)
    for name, ds in s.dataset.items():
        messages = load_template(REPO_ROOT / s.llm.templates.item[ds.domain]).messages(**item_context(item, ds.domain))
        assert 'A "quoted" {title}' in messages[-1]["content"], name
        messages = user_template.messages(**user_context(user, {1: item}, ds.domain))
        assert 'A "quoted" {title}' in messages[-1]["content"], name


def test_registries_implement_exactly_the_names_params_may_use():
    assert sorted(FORMATS) == sorted(FORMAT_NAMES)
    assert sorted(AUGMENTERS) == sorted(KINDS)


@pytest.mark.parametrize("override, message", [
    ("dataset.amazon-magazines.domain=magazine", "'magazine' has no item template"),
    ("dataset.ml-1m.format=ml-2m", "'ml-2m' has no loader"),
    ("train.seed=3", "train.seed is gone"),
    ("trian.lr=1", "unknown top-level key(s) ['trian']"),
    ("variants=[base]", "unknown variant 'base'"),
    ("variant.base={kind: llm}", "reserved"),
    ("backbone.prm.max_candidates=50", "max_candidates=50 < prepare.n_candidates=100"),
    ("backbone.dlcm.model=dlcn", "'dlcn' is not a registered model"),
    ("backbones=[prm, nope]", "unknown backbone 'nope'"),
    ("seeds=[1, 1]", "lists a seed twice"),
    ("prepare.llm_history_cut=none", "must stay before_targets"),
    ("dataset.ml-1m.prepare={llm_history_cut: none}", "must carry LEAKY in its name"),
    ("variant.ur4rec.kind=retriever", "'retriever' is not one of"),
    ("prepare.train_samples_per_user=some", "an integer >= 1 or 'all'"),
    ("retriever.per_backbone={prm: {n_proxies: 8, z_history: 10}}", "no entry for backbone 'dlcm'"),
    ("dataset.ml-1m.paper_table=ml1m", "paper_table: 'ml1m' is not one of ml-1m, amazon-books, steam"),
    ("retriever.per_backbone.prm.joint={warmstart: false}", "retriever.per_backbone.prm.joint: unknown parameter(s) ['warmstart']"),
    ("retriever.per_backbone.prm.joint={epochs: many}", "retriever.per_backbone.prm.joint.epochs: expected an integer"),
])
def test_bad_settings_are_refused_up_front(override, message):
    params = shipped(override)
    if override.startswith("variant.base"):
        params["variants"] = ["base"]
    with pytest.raises(ParamsError) as info:
        parse_settings(params)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_dataset_may_override_prepare_and_a_leaky_one_says_so():
    s = parse_settings(shipped("dataset.ml-100k.prepare={eval_samples_per_user: 5}"))
    assert s.prepare_for("ml-100k").eval_samples_per_user == 5 and s.prepare.eval_samples_per_user == 10
    assert s.prepare_for("ml-100k-LEAKY").llm_history_cut == "none"


def test_train_config_of_a_run_takes_its_seed_the_backbone_lr_and_the_joint_overrides():
    s = load_settings(SHIPPED)
    base = s.train_config("sasrec", seed=7)
    assert base.seed == 7 and base.lr == s.backbone["sasrec"].config.lr and base.epochs == s.train.epochs
    joint = s.train_config("sasrec", seed=7, joint=True)
    assert joint.lr == s.retriever.joint.backbone_lr and joint.epochs == s.retriever.joint.epochs


def test_a_backbone_regime_reaches_every_arm_of_that_backbone_and_no_other():
    s = parse_settings(shipped("retriever.per_backbone.sasrec.joint={warm_start: false, epochs: null, backbone_lr: null}"))
    sasrec, gru = s.train_config("sasrec", seed=0, joint=True), s.train_config("gru4rec", seed=0, joint=True)
    assert sasrec.epochs == s.train.epochs and sasrec.lr == s.backbone["sasrec"].config.lr
    assert gru.epochs == s.retriever.joint.epochs and gru.lr == s.retriever.joint.backbone_lr
    for variant, warm in (("control", False), ("bert", False)):
        assert s.resolve(RunSpec("ml-100k", "sasrec", variant, 0)).retriever.joint.warm_start is warm
    assert s.resolve(RunSpec("ml-100k", "gru4rec", "bert", 0)).retriever.joint.warm_start is True
    assert s.retriever.joint.warm_start is True  # the shared section itself is untouched


def test_the_shipped_regime_trains_history_blind_rerankers_from_scratch_and_warm_starts_sequential_ones():
    s = load_settings(SHIPPED)
    for backbone in ("dlcm", "prm", "setrank"):
        cfg = s.train_config(backbone, seed=0, joint=True)
        assert not s.retriever.joint_for(backbone).warm_start
        assert (cfg.epochs, cfg.patience, cfg.lr) == (s.train.epochs, s.train.patience, s.backbone[backbone].config.lr)
    for backbone in ("gru4rec", "sasrec"):
        assert s.retriever.joint_for(backbone).warm_start
        assert s.train_config(backbone, seed=0, joint=True).epochs == s.retriever.joint.epochs
    # SASRec's fresh fusion and adaptor step ten times smaller; GRU4Rec keeps the shared rate
    assert s.retriever.joint_for("sasrec").augmenter_lr == s.retriever.joint.augmenter_lr / 10
    assert s.retriever.joint_for("gru4rec").augmenter_lr == s.retriever.joint.augmenter_lr


def test_a_backbone_may_bound_its_own_base_epochs():
    s = parse_settings(shipped("backbone.lrurec.epochs=4"))
    assert s.train_config("lrurec", seed=0).epochs == 4 and s.train_config("sasrec", seed=0).epochs == s.train.epochs
    assert s.train_config("lrurec", seed=0, joint=True).epochs == s.retriever.joint.epochs
    assert load_settings(SHIPPED).train_config("recformer", seed=0).epochs == 3
