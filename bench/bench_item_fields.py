"""Benchmark: where the stored LLM item knowledge's co-consumption signal comes from, field by field.

The report's LLM section gives one AUC per item representation (`ur4rec/eval/item_vectors.py`: consecutive
items of training users against the same first item with a random one, centred cosine). This asks which part
of the stored text carries it: each field of the structured answer alone, the title alone, the title with
each field, the title with all of them but one, and the dataset's own category labels in the same wording, all
encoded with the encode stage's encoder. It also says how the model's category field compares with the
dataset's labels (exact, subset, Jaccard), how often a field repeats a value or holds a field's name, and
how concentrated each field's values are (the most common values and their share).

It reads the texts a run already generated (`data/<dataset>/llm/`, or `llm_generations/<g>/` with
`--generation g`) and that run's prepared data; generation is not repeated.

    python bench/bench_item_fields.py [--dataset ml-100k] [--root data] [--generation 0] [--pairs 20000]

Writes bench/results/item_fields.json. Skips with a message when the run's item knowledge is absent.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import numpy as np
import polars as pl
import torch
from common import PARAMS, machine, write_result

from ur4rec.eval.item_vectors import consecutive_pairs, vector_auc
from ur4rec.llm.generate import with_title
from ur4rec.llm.jobs import load_schemas
from ur4rec.llm.structured import OutputSchema, SchemaViolation
from ur4rec.paths import DatasetPaths
from ur4rec.runs.encoding import encoder as make_encoder
from ur4rec.runs.text_settings import load_text_settings


def answers(schema: OutputSchema, raws: list[str | None]) -> list[dict]:
    """Each item's structured answer as a dict ({} where it does not parse: a failed or degenerate prompt)."""
    out = []
    for raw in raws:
        try:
            out.append(schema.parse(raw) if raw else {})
        except SchemaViolation:
            out.append({})
    return out


def category_field(schema: OutputSchema, categories: list[str]) -> str | None:
    """The property whose values are the dataset's categories (its enum is them), if any."""
    for name, prop in schema.schema["properties"].items():
        enum = (prop.get("items") or {}).get("enum") or prop.get("enum")
        if enum and set(enum) <= set(categories):
            return name
    return None


def field_stats(schema: OutputSchema, parsed: list[dict]) -> dict:
    """Per field: how many answers repeat a value or name a field (its own or another), and the commonest values."""
    stats = {}
    props = schema.schema["properties"]
    labels = {str(label).lower() for n, p in props.items() for label in (n, p.get("title", n))}
    for name in props:
        values = [a.get(name) for a in parsed if a.get(name) is not None]
        flat = [v for value in values for v in (value if isinstance(value, list) else [value])]
        counts = collections.Counter(" ".join(str(v).split()).lower() for v in flat)
        stats[name] = {
            "answers": len(values),
            "distinct_values": len(counts),
            "share_repeating_a_value": round(float(np.mean([isinstance(v, list) and len(v) != len(set(v))
                                                            for v in values])), 3) if values else None,
            # a small model answers `themes: themes` or `about: themes`; list fields drop such values when
            # rendered (`ur4rec.llm.structured`), a string field keeps them
            "share_naming_a_field": round(float(np.mean([any(" ".join(str(x).split()).lower() in labels for x in
                                                             (v if isinstance(v, list) else [v]))
                                                         for v in values])), 3) if values else None,
            "top_values": [[v, n, round(n / len(flat), 3)] for v, n in counts.most_common(6)],
        }
    return stats


def category_agreement(parsed: list[dict], field: str, labels: list[list[str]]) -> dict:
    pairs = [(set(a.get(field) or []), set(lab or [])) for a, lab in zip(parsed, labels) if a]
    return {
        "items": len(pairs),
        "exact": round(float(np.mean([m == t for m, t in pairs])), 3),
        "subset_of_labels": round(float(np.mean([bool(m) and m <= t for m, t in pairs])), 3),
        "jaccard": round(float(np.mean([len(m & t) / max(1, len(m | t)) for m, t in pairs])), 3),
    }


def variants(schema: OutputSchema, parsed: list[dict], titles: list[str], labels: list[list[str]],
             field: str | None) -> dict[str, list[str]]:
    """The texts to encode: named subsets of the stored text, each rendered as the stored text renders it."""
    names = list(schema.schema["properties"])

    def render(answer: dict, keep: list[str], title: str | None) -> str:
        body = schema.render({k: answer[k] for k in keep if k in answer})
        return with_title(body, title) if title and body.strip() else (title or body)  # as the stage titles them

    out = {"title": list(titles), "title + all fields (as stored)": [render(a, names, t) for a, t in zip(parsed, titles)],
           "all fields (the model's text alone)": [render(a, names, None) for a in parsed]}
    for name in names:
        out[f"{name} alone"] = [render(a, [name], None) for a in parsed]
        out[f"title + {name}"] = [render(a, [name], t) for a, t in zip(parsed, titles)]
        out[f"title + all but {name}"] = [render(a, [n for n in names if n != name], t) for a, t in zip(parsed, titles)]
    if field:
        title = schema.schema["properties"][field].get("title", field)
        out["dataset labels alone"] = [f"{title}: {', '.join(lab or [])}" for lab in labels]
        out["title + dataset labels"] = [f"{t}. {title}: {', '.join(lab or [])}" for t, lab in zip(titles, labels)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--root", type=Path, default=Path("data"))
    parser.add_argument("--generation", type=int, default=0)
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    paths = DatasetPaths(args.dataset, args.root, args.generation)
    knowledge = paths.llm / "item_knowledge.parquet"
    if not knowledge.exists():
        print(f"skipped: {knowledge} is absent (run `ur4rec generate -d {args.dataset}` first); nothing measured")
        return
    s = load_text_settings(PARAMS, [f"encoder.threads={args.threads}"])
    prepared = paths.prepared
    items = pl.read_parquet(prepared / "items.parquet").select("item_id", "title", "categories").sort("item_id")
    schema = load_schemas(s.llm, s.dataset_config(args.dataset).domain, items.to_dicts())["item"]
    if schema is None:
        print("skipped: llm.structured is false, so the answers have no fields; nothing measured")
        return
    table = items.join(pl.read_parquet(knowledge).select("item_id", "raw"), on="item_id", how="left")
    parsed = answers(schema, table["raw"].to_list())
    labels = table["categories"].to_list()
    field = category_field(schema, sorted({c for lab in labels for c in (lab or [])}))

    interactions = pl.read_parquet(prepared / "interactions.parquet")
    users = pl.read_parquet(prepared / "users.parquet", columns=["user_id", "split"])
    train = interactions.join(users.filter(pl.col("split") == "train").select("user_id"), on="user_id")
    n_items = int(items["item_id"].max())
    first, second, other = consecutive_pairs(train["user_id"].to_numpy(), train["item_id"].to_numpy(),
                                             train["timestamp"].to_numpy(), args.pairs, n_items)
    encoder = make_encoder(s)
    ids = torch.tensor(table["item_id"].to_list())
    auc = {}
    for name, texts in variants(schema, parsed, table["title"].to_list(), labels, field).items():
        vectors = encoder.encode(texts, progress=False).float()
        full = torch.zeros(n_items + 1, vectors.shape[1])
        full[ids] = vectors
        auc[name] = round(vector_auc(full.numpy(), first, second, other), 3)
        print(f"{name:40s} AUC {auc[name]:.3f}", flush=True)
    result = {"machine": machine(), "dataset": args.dataset, "generation": args.generation, "pairs": len(first),
              "items": table.height, "parsed_answers": sum(1 for a in parsed if a), "auc": auc,
              "fields": field_stats(schema, parsed)}
    if field:
        result["category_field"] = {"name": field, **category_agreement(parsed, field, labels)}
    write_result("item_fields", result)
    print(json.dumps({k: v for k, v in result.items() if k != "auc"}, indent=1))


if __name__ == "__main__":
    main()
