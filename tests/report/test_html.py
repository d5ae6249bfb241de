"""The report page, index.html: results.md's tables on it whatever rows they hold, the drill-down data from
what the evaluation saved, the same page for any run list, and untrusted texts kept inert."""

import json
from html.parser import HTMLParser

import pytest

from tests.report.fake_project import make_plan, write_prepared, write_runs
from ur4rec.report.build import build_report

PAYLOAD = '</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><!--'


class Page(HTMLParser):
    """Start tags, attribute values, each script's text and the table rows' cell texts."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.scripts, self.rows, self.attrs = [], [], [], []
        self._script, self._row, self._cell = None, None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]
        if tag == "script":
            self._script = {"attrs": dict(attrs), "text": ""}
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append(self._script)
            self._script = None
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._script is not None:
            self._script["text"] += data
        elif self._cell is not None:
            self._cell += data


def build(tmp_path, preference=lambda u: f"User {u} likes slow films.", title=lambda i: f"Movie {i}", **plan_args):
    plan = make_plan(**plan_args)
    write_prepared(tmp_path, preference=preference, title=title, n_candidates=plan.n_candidates)
    write_runs(tmp_path, plan)
    summary = build_report(plan, root=tmp_path)
    out = tmp_path / "report" / plan.dataset
    return plan, summary, (out / "results.md").read_text(), (out / "index.html").read_text()


def page_data(page: Page) -> dict:
    (data,) = [s for s in page.scripts if s["attrs"].get("id") == "report-data"]
    return json.loads(data["text"])


def test_every_table_row_of_results_md_is_on_the_page(tmp_path):
    _, _, md, html = build(tmp_path, variants=("control", "bert", "llm", "kar", "ur4rec"))
    page = Page(html)
    md_rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in md.splitlines()
               if line.startswith("| ") and not line.startswith("|---")]
    assert len(md_rows) > 20
    for row in md_rows:  # the same cells, marks and CIs included
        assert row in page.rows, row
    assert ["prm", "bert"] == next(r[:2] for r in page.rows if r[:2] == ["prm", "bert"])
    assert any("p Holm" in cell for row in page.rows for cell in row)
    data = page_data(page)
    assert set(data["plots"]) >= {"plot-bars", "plot-train-prm", "plot-train-gru4rec", "plot-pretrain"}


def test_the_drilldown_holds_the_saved_ranks_and_attention(tmp_path):
    plan, _, _, html = build(tmp_path, drilldown_users=5)
    drill = page_data(Page(html))["drill"]
    import polars as pl

    from ur4rec.paths import DatasetPaths

    paths = DatasetPaths("toy", tmp_path)
    attention = pl.read_parquet(paths.run("prm", "ur4rec", 0).eval / "attention.parquet")
    assert [u["id"] for u in drill["users"]] == sorted(attention["user_id"].unique().to_list())
    assert len(drill["users"]) == 5 and all(len(u["lists"]) == 3 for u in drill["users"])
    runs = [(r["backbone"], r["arm"], r["seed"]) for r in drill["runs"]]
    assert len(runs) == len(plan.backbones) * len(plan.arms)
    test = pl.read_parquet(paths.prepared / "test.parquet")
    for user in drill["users"]:
        for lst in user["lists"]:
            row = test.filter(pl.col("sample_id") == lst["sample"]).row(0, named=True)
            assert lst["target"] == row["target"] and lst["candidates"] == row["candidates"]
            for j, (b, a, s) in enumerate(runs):
                ranks = pl.read_parquet(paths.run(b, a, s).eval / "ranks.parquet").filter(
                    pl.col("sample_id") == lst["sample"])["ranks"].to_numpy()[0]
                assert lst["rank"][j] == ranks[row["target_pos"]]
                assert lst["top"][j] == row["candidates"][int(ranks.argmin())]
            retriever_runs = {str(j) for j, (_, a, _) in enumerate(runs) if a == "ur4rec"}
            assert set(lst["att"]) == retriever_runs
            att = lst["att"][min(retriever_runs)]
            assert att["z"][0] == 0 and len(att["target_w"]) == len(att["z"]) == len(att["top_w"])
            assert sum(att["target_w"]) + att["rest_target"] == pytest.approx(1, abs=0.01)
            assert {str(i) for i in att["z"][1:]} <= set(drill["titles"])  # every key of Z has its title
    assert {str(i) for i in drill["users"][0]["history"]} <= set(drill["titles"])


@pytest.mark.parametrize("plan_args", [
    dict(seeds=(0,), variants=()),                                   # Base alone
    dict(seeds=(0, 1, 2), variants=("control", "llm")),              # several seeds, no retriever arm
    dict(seeds=(0, 1), backbones=("sasrec",), variants=("control", "ur4rec"), sweep=(2, 4)),
])
def test_the_same_page_for_any_run_list(tmp_path, plan_args):
    plan, summary, _, html = build(tmp_path, **plan_args)
    page = Page(html)
    data = page_data(page)
    assert len(data["drill"]["runs"]) == len(plan.backbones) * len(plan.arms) * len(plan.seeds)
    has_retriever = any(a.variant is not None and a.variant.uses_retriever for a in plan.arms)
    assert any(lst["att"] for u in data["drill"]["users"] for lst in u["lists"]) == has_retriever
    assert ("plot-pretrain" in data["plots"]) == has_retriever and ("plot-sweep" in data["plots"]) == bool(plan_args.get("sweep"))
    # offline: nothing is loaded from anywhere, links are anchors on the page
    assert not [(t, k, v) for t, k, v in page.attrs if k == "src"]
    assert all(v.startswith("#") for t, k, v in page.attrs if k == "href")


def test_runs_evaluated_before_ranks_were_saved_show_no_rank(tmp_path):
    plan = make_plan(variants=("control",))
    write_prepared(tmp_path)
    write_runs(tmp_path, plan, with_ranks=False)
    build_report(plan, root=tmp_path)
    drill = page_data(Page((tmp_path / "report" / "toy" / "index.html").read_text()))["drill"]
    assert all(r is None for u in drill["users"] for lst in u["lists"] for r in lst["rank"])


def test_llm_texts_and_titles_cannot_inject_markup(tmp_path):
    """A preference text and an item title that close the script element, open another, and add an element
    with a handler: the page keeps its own scripts, no payload element, and the data round-trips."""
    _, _, _, html = build(tmp_path, preference=lambda u: f"user {u}: {PAYLOAD}", title=lambda i: f"Movie {i} {PAYLOAD}")
    from bokeh.resources import Resources

    bokeh = Resources(mode="inline", components=["bokeh"]).render_js().lower()
    own = bokeh.count("<script") + 2  # Bokeh's, then the data and the page's script
    page = Page(html)
    assert len(page.scripts) == own and "img" not in page.tags
    assert html.lower().count("<script") == own and html.lower().count("</script") == bokeh.count("</script") + 2
    data = page_data(page)
    assert data["drill"]["users"][0]["pref"] == f"user 1: {PAYLOAD}"
    assert any(t.endswith(PAYLOAD) for t in data["drill"]["titles"].values())
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html  # the LLM section, escaped


def test_the_llm_section_samples_each_bad_status_first(tmp_path):
    _, _, _, html = build(tmp_path, variants=())  # item 200, the last, is the one truncated text
    shown = [f"Item {i}: a drama." in html for i in range(1, 201)]
    assert sum(shown) == 5 and shown[199] and all(shown[:4])


@pytest.mark.parametrize("damage", ["no ranks column", "other candidate count", "not parquet"])
def test_a_damaged_ranks_file_is_one_line_naming_it(tmp_path, damage):
    import polars as pl

    from ur4rec.errors import UserError
    from ur4rec.paths import DatasetPaths

    plan = make_plan(variants=("control",))
    write_prepared(tmp_path)
    write_runs(tmp_path, plan)
    path = DatasetPaths("toy", tmp_path).run("prm", "control", 0).eval / "ranks.parquet"
    frame = pl.read_parquet(path)
    if damage == "no ranks column":
        frame.drop("ranks").write_parquet(path)
    elif damage == "other candidate count":
        frame.with_columns(pl.col("ranks").arr.head(5).list.to_array(5)).write_parquet(path)
    else:
        path.write_text("not parquet")
    with pytest.raises(UserError) as caught:
        build_report(plan, root=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
