"""The report as one self-contained page, `data/report/<ds>/index.html`: opens from disk with no server and no
network.

What it shows: every section of results.md (the tables with CIs and Holm marks, the controls, whatever rows
the report gains; rendered from the Markdown, so a new table needs no change here), interactive plots (Bokeh,
its JavaScript inlined, each plot's data embedded as JSON), the LLM's texts and statuses, the cost of each
stage, and a per-user drill-down: the user's LLM history, the preference text, each test list's target with
its rank under every evaluated run, and for UR4Rec arms the retriever's attention over Z. The ranks and the
attention are read from what the evaluation stage saved (`eval/<arm>/ranks.parquet`, `attention.parquet`);
nothing is recomputed here.

LLM texts and item titles are untrusted: the template autoescapes, the Markdown renderer escapes raw HTML, the
data travels as JSON escaped for a `<script>` element (`tojson`), and the page's script writes it with
`textContent` only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from bokeh.embed import json_item
from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Span, Whisker
from bokeh.palettes import Category10_10, Category20_20
from bokeh.plotting import figure
from bokeh.resources import Resources
from bokeh.transform import factor_cmap, jitter
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from ur4rec.errors import UserError
from ur4rec.eval.drilldown import sample_users
from ur4rec.io import write_text
from ur4rec.paths import DatasetPaths
from ur4rec.report.collect import Results, read_json
from ur4rec.report.plan import ReportPlan

TEMPLATES = Path(__file__).parent / "templates"
PAGE = "report.html.j2"
HTML_FILE = "index.html"
RANKS_FILE = "ranks.parquet"          # written by ur4rec.runs.evaluation, beside per_sample.parquet
ATTENTION_FILE = "attention.parquet"
ATTENTION_COLUMNS = ["sample_id", "user_id", "z_items", "top", "target_weights", "top_weights"]
N_TEXT_SAMPLES = 5
SHOWN_KEYS = 12  # keys of Z shown per attention table: the preference and the strongest history items


def write_html(plan: ReportPlan, results: Results, summary: dict[str, Any], markdown: str, root: Path,
               out: Path) -> Path:
    """Write `out/index.html` from the report's Markdown, its summary and the runs' saved drill-down data."""
    paths = DatasetPaths(plan.dataset, root)
    context = {
        "dataset": plan.dataset,
        "leaky": plan.leaky,
        "sections": markdown_sections(markdown),  # each with its `group`: where the page puts it
        "plots": plots(plan, results, summary, paths),
        "llm": llm_texts(paths),
        "costs": stage_costs(plan, results, paths),
        "drill": drilldown(plan, results, paths),
    }
    path = out / HTML_FILE
    write_text(path, render_page(context))
    return path


def render_page(context: dict[str, Any]) -> str:
    """The page from its context (autoescaped; `plots`' Bokeh items and `drill` travel as escaped JSON)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    # Bokeh's documents define each model where it first occurs: their key order must survive (tojson sorts).
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "separators": (",", ":")}
    js = Resources(mode="inline", components=["bokeh"]).render_js()
    plot_items = {i["id"]: i["item"] for p in context["plots"] for i in p["items"]}
    return env.get_template(PAGE).render(
        **context, plot_items=plot_items, bokeh_js=Markup(js), script=Markup((TEMPLATES / "report.js").read_text(encoding="utf-8")),
        style=Markup((TEMPLATES / "report.css").read_text(encoding="utf-8")))


# ---------------------------------------------------------------- results.md, section by section


def markdown_sections(markdown: str) -> list[dict[str, Any]]:
    """results.md split at its `## ` headings, each rendered (raw HTML escaped, tables on); the PNG links are
    left out, the page has its own plots."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    sections, title, lines = [], "Summary", []

    def flush() -> None:
        if any(line.strip() for line in lines):
            group = next((g for prefix, g in GROUPS.items() if title.startswith(prefix)), "tables")
            sections.append({"title": Markup(md.renderInline(title)), "id": slug(title), "group": group,
                             "html": Markup(md.render("\n".join(lines)))})

    for line in markdown.splitlines():
        if line.startswith("## "):
            flush()
            title, lines = line[3:].strip(), []
        elif line.startswith("# ") or (line.startswith("![") and line.rstrip().endswith(".png)")):
            continue
        else:
            lines.append(line)
    flush()
    return sections


# results.md sections shown beside the page's own LLM and cost sections; every other one goes with the tables
GROUPS = {"LLM": "llm", "Training cost": "costs"}


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "section"


# ---------------------------------------------------------------- plots (Bokeh items, embedded as JSON)


def _palette(n: int) -> list[str]:
    return list(Category10_10 if n <= 10 else Category20_20)[:max(n, 1)] * (1 + n // 20)


def plots(plan: ReportPlan, results: Results, summary: dict[str, Any], paths: DatasetPaths) -> list[dict[str, Any]]:
    """The page's plots, each `{id, title, note, items: [(label, item id, Bokeh item)]}`: one item is shown at a
    time (the first at load; a plot of several items gets a button per item), so the page renders few."""
    found = [metric_bars(plan, results, summary), training_curves(plan, results), pretraining_curves(plan, paths),
             proxy_sweep(plan, results)]
    return [p for p in found if p is not None]


def _one(plot_id: str, title: str, note: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"id": plot_id, "title": title, "note": note, "items": [{"label": title, "id": plot_id, "item": item}]}


def metric_bars(plan: ReportPlan, results: Results, summary: dict[str, Any]) -> dict[str, Any] | None:
    """The focus metric per backbone and arm: bars at the mean over seeds, whiskers at the 95% user-bootstrap CI,
    a dot per seed."""
    focus = plan.cfg.focus_metric
    cells = summary.get("runs", {})
    factors = [(b, a.name) for b in plan.backbones for a in plan.arms if f"{b}/{a.name}" in cells]
    if not factors:
        return None
    arms = list(dict.fromkeys(a for _, a in factors))
    bars = {"x": factors, "arm": [a for _, a in factors], "mean": [], "low": [], "high": [], "seeds": []}
    dots: dict[str, list] = {"x": [], "arm": [], "value": [], "seed": []}
    for b, a in factors:
        cell = cells[f"{b}/{a}"]
        low, high = cell[f"{focus}:ci95"]
        bars["mean"].append(cell[focus])
        bars["low"].append(low)
        bars["high"].append(high)
        bars["seeds"].append(", ".join(map(str, cell["seeds"])))
        for seed, value in zip(cell["seeds"], cell[f"{focus}:per_seed"]):
            dots["x"].append((b, a))
            dots["arm"].append(a)
            dots["value"].append(value)
            dots["seed"].append(seed)
    fig = figure(x_range=FactorRange(*factors), height=380, sizing_mode="stretch_width", toolbar_location="right",
                 title=f"{plan.dataset}: {focus.upper()} on the test split (whiskers: 95% user-bootstrap CI; dots: seeds)",
                 tools="pan,wheel_zoom,box_zoom,reset,save")
    source = ColumnDataSource(bars)
    colors = factor_cmap("x", palette=_palette(len(arms)), factors=arms, start=1, end=2)
    renderer = fig.vbar(x="x", top="mean", width=0.8, source=source, fill_color=colors, line_color=None, alpha=0.8)
    fig.add_layout(Whisker(base="x", lower="low", upper="high", source=source, line_width=1.5))
    seeds = fig.scatter(x=jitter("x", width=0.3, range=fig.x_range), y="value", source=ColumnDataSource(dots),
                        size=6, color="black", alpha=0.7)
    fig.add_tools(HoverTool(renderers=[renderer], tooltips=[("run", "@x"), (focus, "@mean{0.0000}"),
                                                            ("95% CI", "[@low{0.0000}, @high{0.0000}]"),
                                                            ("seeds", "@seeds")]))
    fig.add_tools(HoverTool(renderers=[seeds], tooltips=[("run", "@x"), ("seed", "@seed"), (focus, "@value{0.0000}")]))
    random = summary.get("random", {}).get(focus)
    if random is not None:
        fig.add_layout(Span(location=random, dimension="width", line_dash="dashed", line_color="grey"))
    fig.xaxis.major_label_orientation = math.pi / 4
    fig.xgrid.grid_line_color = None
    fig.y_range.start = 0
    fig.yaxis.axis_label = focus.upper()
    return _one("plot-bars", f"{focus.upper()} by backbone and arm",
                "Dashed line: random ranking." if random is not None else "", json_item(fig))


def training_curves(plan: ReportPlan, results: Results) -> dict[str, Any] | None:
    """Per backbone: the validation selection metric per epoch of every run (a line per arm and seed)."""
    found = []
    arms = [a.name for a in plan.arms]
    colors = dict(zip(arms, _palette(len(arms))))
    dashes = ["solid", "dashed", "dotted", "dotdash", "dashdot"]
    for backbone in plan.backbones:
        lines = []
        for arm in arms:
            for i, seed in enumerate(results.seeds(backbone, arm)):
                fit = read_json(results.runs[(backbone, arm, seed)].paths.train / "fit.json") or {}
                key = f"valid_{fit.get('select_metric', '')}"
                history = [h for h in fit.get("history", []) if key in h]
                if history:
                    lines.append((arm, seed, i, key, history))
        if not lines:
            continue
        fig = figure(height=300, sizing_mode="stretch_width", title=f"{backbone}: validation {lines[0][3][6:]} per epoch",
                     tools="pan,wheel_zoom,box_zoom,reset,save", x_axis_label="epoch", y_axis_label=lines[0][3][6:])
        for arm, seed, i, key, history in lines:
            source = ColumnDataSource({"epoch": [h["epoch"] + 1 for h in history], "value": [h[key] for h in history],
                                       "seconds": [h.get("seconds", 0.0) for h in history]})
            fig.line("epoch", "value", source=source, color=colors[arm], line_dash=dashes[i % len(dashes)],
                     legend_label=arm, line_width=2)
        fig.add_tools(HoverTool(tooltips=[("epoch", "@epoch"), ("value", "@value{0.0000}"), ("seconds", "@seconds{0.0}")]))
        fig.legend.click_policy = "hide"
        fig.legend.location = "bottom_right"
        found.append({"label": backbone, "id": f"plot-train-{slug(backbone)}", "item": json_item(fig)})
    if not found:
        return None
    return {"id": "plot-train", "title": "Training curves", "items": found,
            "note": "A line per arm and seed (seeds by dash); click a legend entry to hide it."}


def pretraining_curves(plan: ReportPlan, paths: DatasetPaths) -> dict[str, Any] | None:
    """Train (dashed) and validation (solid) InfoNCE per epoch of every pre-trained retriever, against chance."""
    runs = []
    for backbone in plan.backbones:
        for arm in plan.arms:
            if arm.variant is None or not arm.variant.needs_pretraining:
                continue
            for seed in plan.seeds:
                fit = read_json(paths.run(backbone, arm.name, seed).pretrain / "fit.json") or {}
                history = [h for h in fit.get("history", []) if "train_cl" in h and "valid_cl" in h]
                if history:
                    runs.append((f"{backbone}/{arm.name}/s{seed}", history))
    if not runs:
        return None
    fig = figure(height=320, sizing_mode="stretch_width", title="Retriever pre-training (dashed: train, solid: valid)",
                 tools="pan,wheel_zoom,box_zoom,reset,save", x_axis_label="epoch", y_axis_label="InfoNCE")
    for (label, history), color in zip(runs, _palette(len(runs))):
        source = ColumnDataSource({"epoch": [h["epoch"] + 1 for h in history], "train": [h["train_cl"] for h in history],
                                   "valid": [h["valid_cl"] for h in history]})
        fig.line("epoch", "train", source=source, color=color, line_dash="dashed", legend_label=label)
        fig.line("epoch", "valid", source=source, color=color, line_width=2, legend_label=label)
    fig.add_layout(Span(location=math.log(plan.n_negatives + 1), dimension="width", line_dash="dotted",
                        line_color="grey"))
    fig.add_tools(HoverTool(tooltips=[("epoch", "@epoch"), ("train", "@train{0.000}"), ("valid", "@valid{0.000}")]))
    fig.legend.click_policy = "hide"
    return _one("plot-pretrain", "Retriever pre-training curves",
                f"Dotted line: chance, ln(M + 1) with M = {plan.n_negatives}.", json_item(fig))


def proxy_sweep(plan: ReportPlan, results: Results) -> dict[str, Any] | None:
    """The focus metric against K for the arms of family `proxy_sweep` (a line per backbone, a dot per seed)."""
    focus = plan.cfg.focus_metric
    series: dict[str, list[tuple[int, float, list[float]]]] = {}
    for arm in plan.arms:
        if arm.family != "proxy_sweep":
            continue
        for backbone in plan.backbones:
            values = results.values(backbone, arm.name, focus)
            if values and backbone in arm.proxies:
                series.setdefault(backbone, []).append((arm.proxies[backbone], float(np.mean(values)), values))
    if not series:
        return None
    fig = figure(height=320, sizing_mode="stretch_width", x_axis_type="log", title=f"{focus.upper()} against the number of proxies K",
                 tools="pan,wheel_zoom,box_zoom,reset,save", x_axis_label="K", y_axis_label=focus.upper())
    for (backbone, points), color in zip(sorted(series.items()), _palette(len(series))):
        points.sort()
        fig.line([k for k, _, _ in points], [m for _, m, _ in points], color=color, legend_label=backbone, line_width=2)
        fig.scatter([k for k, _, vs in points for _ in vs], [v for _, _, vs in points for v in vs], color=color,
                    size=5, legend_label=backbone)
    fig.legend.click_policy = "hide"
    return _one("plot-sweep", "K sweep", "Lines: mean over seeds; dots: seeds.", json_item(fig))


# ---------------------------------------------------------------- the LLM's texts, stage costs


def _read(path: Path, columns: list[str] | None = None) -> pl.DataFrame | None:
    """The Parquet file at `path` (None when absent); a file that is unreadable or lacks `columns` is a
    one-line error naming it."""
    if not path.exists():
        return None
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for a damaged file
        raise UserError(f"{path}: not a readable Parquet file ({type(exc).__name__}); rerun the stage that "
                        "writes it") from None
    missing = sorted(set(columns or []) - set(frame.columns))
    if missing:
        raise UserError(f"{path}: missing column(s) {missing} (has {frame.columns}); rerun the stage that writes it")
    return frame.select(columns) if columns else frame


def llm_texts(paths: DatasetPaths) -> dict[str, Any]:
    """Statuses, the encoder's replacements (item- and user-vector quality) and a few sample texts per kind (one
    of each status that is not `ok` first)."""
    stats = read_json(paths.llm / "stats.json") or {}
    encode = read_json(paths.encode_report) or {}
    items = _read(paths.prepared / "items.parquet", ["item_id", "title"])
    titles = dict(zip(items["item_id"].to_list(), items["title"].to_list())) if items is not None else {}
    samples = []
    for kind, file, key in (("user preference", "user_preferences.parquet", "user_id"),
                            ("item knowledge", "item_knowledge.parquet", "item_id")):
        frame = _read(paths.llm / file)
        if frame is None or "text" not in frame.columns:
            continue
        frame = frame.sort(key)
        if "status" in frame.columns:  # the first text of each status that is not ok, then ok ones
            bad = frame.filter(pl.col("status") != "ok").unique("status", keep="first", maintain_order=True)
            frame = pl.concat([bad, frame.filter(pl.col("status") == "ok")], how="diagonal_relaxed")
        for row in frame.head(N_TEXT_SAMPLES).iter_rows(named=True):
            label = f"user {row[key]}" if key == "user_id" else f"item {row[key]}: {titles.get(row[key], '?')}"
            samples.append({"kind": kind, "label": label, "status": row.get("status", ""), "text": row["text"]})
    vectors = [{"kind": kind, "n": k.get("n"), "replaced": k.get("replaced", {}), "policy": k.get("policy", "")}
               for kind, k in (encode.get("kinds") or {}).items()]
    return {"model": stats.get("model"), "status": stats.get("status") or {}, "vectors": vectors, "samples": samples}


def _fit_seconds(path: Path) -> float | None:
    fit = read_json(path)
    if not fit or "history" not in fit:
        return None
    return float(sum(h.get("seconds", 0.0) + h.get("validation_seconds", 0.0) for h in fit["history"]))


def stage_costs(plan: ReportPlan, results: Results, paths: DatasetPaths) -> list[dict[str, Any]]:
    """Wall seconds per stage: generation and encoding once per dataset, pre-training and training per run."""
    rows = []
    stats = read_json(paths.llm / "stats.json") or {}
    if "generation_seconds" in stats:
        rows.append({"stage": "generate", "what": f"{stats.get('generated', 0)} prompts generated, "
                     f"{stats.get('cache_hits', 0)} from the cache, {stats.get('output_tokens_per_s', 0)} tokens/s",
                     "runs": 1, "seconds": stats["generation_seconds"]})
    encode = read_json(paths.encode_report) or {}
    if "seconds" in encode:
        rows.append({"stage": "encode", "what": "frozen-encoder vectors", "runs": 1, "seconds": encode["seconds"]})
    for stage, folder in (("pretrain", "pretrain"), ("train", "train")):
        for arm in plan.arms:
            seconds = []
            for backbone in plan.backbones:
                for seed in plan.seeds:
                    value = _fit_seconds(getattr(paths.run(backbone, arm.name, seed), folder) / "fit.json")
                    if value is not None:
                        seconds.append(value)
            if seconds:
                rows.append({"stage": stage, "what": arm.name, "runs": len(seconds),
                             "seconds": round(float(np.mean(seconds)), 1)})
    return rows


# ---------------------------------------------------------------- the per-user drill-down


def drilldown(plan: ReportPlan, results: Results, paths: DatasetPaths) -> dict[str, Any] | None:
    """The sampled test users' data for the page's script: their lists, each run's target rank and top
    candidate (from `ranks.parquet`), the retriever's attention (from `attention.parquet`), their LLM history and
    preference text, and the titles of every item shown."""
    test = _read(paths.prepared / "test.parquet", ["sample_id", "user_id", "target", "candidates", "target_pos"])
    if test is None or not results.runs:
        return None
    order = {a.name: i for i, a in enumerate(plan.arms)}
    keys = sorted(results.runs, key=lambda k: (plan.backbones.index(k[0]), order[k[1]], k[2]))
    attention = {k: _read(results.runs[k].paths.eval / ATTENTION_FILE, ATTENTION_COLUMNS) for k in keys}
    kept = next((f["user_id"].unique() for f in attention.values() if f is not None and f.height), None)
    users = (np.sort(kept.to_numpy()) if kept is not None
             else sample_users(results.runs[keys[0]].frame["user_id"].to_numpy(), plan.drilldown_users))
    test = test.filter(pl.col("user_id").is_in(users.tolist())).sort("sample_id")
    row_of = {sid: i for i, sid in enumerate(test["sample_id"].to_list())}
    candidates = test["candidates"].to_list()
    target_pos = test["target_pos"].to_list()
    n = test.height
    rank = [[None] * len(keys) for _ in range(n)]
    top = [[None] * len(keys) for _ in range(n)]
    runs = []
    for j, key in enumerate(keys):
        backbone, arm, seed = key
        runs.append({"backbone": backbone, "arm": arm, "seed": seed})
        path = results.runs[key].paths.eval / RANKS_FILE
        ranks = _read(path, ["sample_id", "ranks"])
        if ranks is None:
            continue
        ranks = ranks.filter(pl.col("sample_id").is_in(list(row_of)))
        for sid, r in zip(ranks["sample_id"].to_list(), ranks["ranks"].to_list()):
            i = row_of[sid]
            if len(r) != len(candidates[i]):
                raise UserError(f"{path}: sample {sid} has {len(r)} ranks but its test list {len(candidates[i])} "
                                "candidates; rerun the evaluate stage")
            r = np.asarray(r)
            rank[i][j] = int(r[target_pos[i]])
            top[i][j] = int(candidates[i][int(np.argmin(r))])
    att: list[dict[str, Any]] = [{} for _ in range(n)]
    for j, key in enumerate(keys):
        frame = attention[key]
        if frame is None:
            continue
        for row in frame.filter(pl.col("sample_id").is_in(list(row_of))).iter_rows(named=True):
            att[row_of[row["sample_id"]]][str(j)] = {"top": row["top"], **_strongest_keys(
                row["z_items"], row["target_weights"], row["top_weights"])}
    users_frame = _read(paths.prepared / "users.parquet", ["user_id", "raw_id", "llm_history"])
    history = ({} if users_frame is None else
               {u: (raw, h) for u, raw, h in users_frame.filter(pl.col("user_id").is_in(users.tolist())).iter_rows()})
    prefs = _read(paths.llm / "user_preferences.parquet", ["user_id", "text", "status"])
    pref = ({} if prefs is None else
            {r["user_id"]: (r["text"], r.get("status", "")) for r in
             prefs.filter(pl.col("user_id").is_in(users.tolist())).iter_rows(named=True)})
    lists_of: dict[int, list] = {}
    shown: set[int] = set()
    for i, (sid, uid, target) in enumerate(test.select("sample_id", "user_id", "target").iter_rows()):
        lists_of.setdefault(uid, []).append({"sample": sid, "target": target, "candidates": candidates[i],
                                             "rank": rank[i], "top": top[i], "att": att[i]})
        shown.update(candidates[i])
        for a in att[i].values():
            shown.update(a["z"])
    out_users = []
    for uid in users.tolist():
        raw, hist = history.get(uid, (None, []))
        text, status = pref.get(uid, (None, None))
        shown.update(hist or [])
        out_users.append({"id": uid, "raw": raw, "history": hist or [], "pref": text, "status": status,
                          "lists": lists_of.get(uid, [])})
    items = _read(paths.prepared / "items.parquet", ["item_id", "title"])
    titles = ({} if items is None else
              {str(i): t for i, t in items.filter(pl.col("item_id").is_in(list(shown))).iter_rows()})
    return {"runs": runs, "users": out_users, "titles": titles, "n_candidates": plan.n_candidates,
            "n_test_users": int(results.runs[keys[0]].frame["user_id"].n_unique())}


def _strongest_keys(z: list[int], target: list[list[float]], top: list[list[float]]) -> dict[str, Any]:
    """Z's keys for the page: the preference key and the `SHOWN_KEYS - 1` history keys with the most attention
    from the target or the top candidate (mean over layers), in Z's order; `rest_*` is what the others got."""
    t, p = (np.asarray(w, dtype=np.float64).mean(axis=0) for w in (target, top))
    keep = np.zeros(len(z), dtype=bool)
    keep[0] = True
    keep[1 + np.argsort(-np.maximum(t[1:], p[1:]), kind="stable")[:SHOWN_KEYS - 1]] = True
    return {"z": [z[i] for i in np.flatnonzero(keep)], "target_w": [round(float(v), 3) for v in t[keep]],
            "top_w": [round(float(v), 3) for v in p[keep]], "rest": int((~keep).sum()),
            "rest_target": round(float(t[~keep].sum()), 3), "rest_top": round(float(p[~keep].sum()), 3)}
