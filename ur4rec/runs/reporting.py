"""The report stage: what a dataset's report covers, from typed settings, and the report itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ur4rec.eval.reference import SCORERS
from ur4rec.paths import BASE_ARM, DATA_ROOT
from ur4rec.report.build import build_report
from ur4rec.report.plan import Arm, ReportPlan
from ur4rec.runs.settings import Settings


def report_plan(s: Settings, dataset: str) -> ReportPlan:
    """What the report of `dataset` covers: Base, then the variants, with each retriever variant's K."""
    arms = [Arm(BASE_ARM, None)]
    for name in s.variants:
        variant = s.variant_config(name)
        proxies = ({b: variant.proxy_count(s.per_backbone(b).n_proxies) for b in s.backbones}
                   if variant.uses_retriever else {})
        arms.append(Arm(name, variant, proxies))
    return ReportPlan(dataset=dataset, backbones=list(s.backbones), arms=arms, seeds=list(s.seeds),
                      ks=list(s.evaluate.ks), n_candidates=s.prepare_for(dataset).n_candidates, cfg=s.report,
                      leaky=s.is_leaky(dataset), clean_twin=s.dataset_config(dataset).clean_twin,
                      n_negatives=s.retriever.pretrain.n_negatives, drilldown_users=s.evaluate.drilldown_users,
                      models={b: s.backbone_spec(b).model for b in s.backbones}, references=list(SCORERS),
                      paper_table=s.dataset_config(dataset).paper_table, generations=s.llm.generations)


def report(s: Settings, dataset: str, root: Path = DATA_ROOT) -> dict[str, Any]:
    return build_report(report_plan(s, dataset), root)
