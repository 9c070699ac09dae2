"""The release data card: ``README.md`` in Hugging Face dataset-card form.

A YAML header (``configs`` pointing at the shards, ``dataset_info``, and a ``metamer_bench``
block validated by ``benchmark/schemas/data_card.schema.json``) and a human-readable body.

``datasets.load_dataset(<release folder>)`` reads the header: the ``default`` config is every
shard, one config per dataset holds that dataset's base graph(s) and sets (so every
``*_same_as`` id a row names is in the same config), and ``bases`` the base graphs alone.
``dataset_info.features`` is generated from the shards' parquet schema
(:data:`benchmark.release.shards.SCHEMA`), never written by hand, so the declared features are
the stored columns. The card is a function of the release's content only: build timing lives in
``.build/state.json``, which the manifest does not hash, so a rebuild gives the same bytes.
"""
from __future__ import annotations

import os
import statistics
from pathlib import Path

import yaml

from benchmark.errors import UserError
from benchmark.files import atomic_write_bytes, read_json
from benchmark.graphs import get_spec
from benchmark.release.shards import COLUMN_DOCS, SCHEMA

CARD_NAME = "README.md"


def _mean(values):
    values = [v for v in values if v is not None]
    return round(statistics.mean(values), 4) if values else None


# DESIGN 3: a set is ranked only when its validity criterion passes its controls (near twins at
# least 95% valid, far twins at most 5%) and at least 90% of its metamers are valid.
NEAR_MIN, FAR_MAX, VALIDITY_GOAL = 0.95, 0.05, 0.90


def set_verdict(summary: dict[str, dict]) -> dict:
    """Controls verdict of a set from its per-seed summaries: ``{"controls", "ranked", "reason"}``."""
    per_seed = list(summary.values())
    validity = _mean([s.get("validity_rate") for s in per_seed])
    near = _mean([s.get("near_validity_rate") for s in per_seed])
    far = _mean([s.get("far_validity_rate") for s in per_seed])
    reasons = []
    if near is None or near < NEAR_MIN:
        reasons.append(f"near twins {near} valid < {NEAR_MIN}")
    if far is None or far > FAR_MAX:
        reasons.append(f"far twins {far} valid > {FAR_MAX}")
    controls = "pass" if not reasons else "fail"
    if validity is None or validity < VALIDITY_GOAL:
        reasons.append(f"metamer validity {validity} < {VALIDITY_GOAL}")
    return {"controls": controls, "ranked": not reasons, "reason": "; ".join(reasons)}


def metamer_block(root: Path, config, sets: list[dict], summaries: dict[str, dict]) -> dict:
    references, seen = [], set()
    for entry in sets:
        pair = (entry["dataset"], entry["reference_model"])
        if pair in seen:
            continue
        seen.add(pair)
        card = read_json(root / entry["checkpoint"] / "card.json")
        ref = {"dataset": pair[0], "arch": pair[1], "checkpoint": entry["checkpoint"],
               "weights_sha256": card["weights_sha256"], "test_acc": round(card["metrics"]["test_acc"], 4),
               "num_params": card["metrics"]["num_params"]}
        if "reference" in entry:
            ref.update(arch=entry["reference"]["arch"], reference=entry["reference"]["name"],
                       seed=entry["reference"]["seed"], num_hidden_layers=entry["num_hidden_layers"])
        references.append(ref)
    set_rows = []
    for entry in sets:
        summary = summaries.get(entry["key"], {})
        per_seed = summary.values()
        v2 = {}
        if "stage" in entry:
            v2 = {"stage": entry["stage"], **set_verdict(summary),
                  "best_iteration": _mean([s.get("best_iteration") for s in per_seed]),
                  "iterations": _mean([s.get("iterations") for s in per_seed]),
                  "status": sorted({str(s.get("status")) for s in per_seed}),
                  **{name: _mean([s.get(name) for s in per_seed])
                     for name in ("feature_jaccard_mean", "wl_similarity", "moved_words", "edges_removed",
                                  "edge_homophily", "far_edge_homophily", "near_edge_homophily",
                                  "far_feature_cosine_mean", "same_prediction_rate")}}
        set_rows.append({**v2, "key": entry["key"], "seeds": len(entry["seeds"]),
                         "validity_rate": _mean([s.get("validity_rate") for s in per_seed]),
                         "rel_loss": _mean([s.get("rel_loss") for s in per_seed]),
                         "feature_cosine_mean": _mean([s.get("feature_cosine_mean") for s in per_seed]),
                         "edge_jaccard": _mean([s.get("edge_jaccard") for s in per_seed]),
                         "near_validity_rate": _mean([s.get("near_validity_rate") for s in per_seed]),
                         "far_validity_rate": _mean([s.get("far_validity_rate") for s in per_seed])})
    sources = []
    for name in config.datasets:
        spec = get_spec(name)
        sources.append({"name": name, "citation": spec.citation, "license": spec.license})
    return {"release": config.release, "version": config.version, "reference_models": references,
            "generation": {"seeds": list(config.seeds), "kinds": list(config.kinds), "train_seed": config.train_seed,
                           "options": dict(config.metamer_options)},
            "sets": set_rows, "source_datasets": sources}


def hf_features() -> list[dict]:
    """The card's ``dataset_info.features``: the shards' Arrow schema in Hugging Face's YAML form."""
    import datasets

    # Features._to_yaml_list is what `datasets` itself writes into dataset cards (push_to_hub).
    return datasets.Features.from_arrow_schema(SCHEMA)._to_yaml_list()


def hf_configs(names: list[str]) -> list[dict]:
    """``configs`` of the card: default (everything), one per dataset (its bases + sets), and bases."""
    def files(path):
        return [{"split": "train", "path": path}]

    return ([{"config_name": "default", "data_files": files(["data/bases/*.parquet"] + [f"data/{d}/*.parquet" for d in names])}]
            + [{"config_name": d, "data_files": files([f"data/bases/{d}.parquet", f"data/{d}/*.parquet"])} for d in names]
            + [{"config_name": "bases", "data_files": files("data/bases/*.parquet")}])


def _type_name(arrow_type) -> str:
    """``list<item: list<item: int64>>`` -> ``list[list[int64]]``; ``float`` -> ``float32``."""
    import pyarrow as pa

    if pa.types.is_list(arrow_type):
        return f"list[{_type_name(arrow_type.value_type)}]"
    return {"float": "float32", "bool": "bool"}.get(str(arrow_type), str(arrow_type))


def _storage(root: Path) -> list[str]:
    """The card's columns and storage sections: what each column holds and what each dataset weighs."""
    def size(folder: Path) -> int:
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0

    lines = ["## Loading with Hugging Face `datasets`", "",
             "```python", "import datasets, torch", "",
             f'rows = datasets.load_dataset("data_cards/{root.name}", "Cora", split="train")  # or "default", "bases", a dataset',
             "by_id = {r[\"id\"]: r for r in rows}", "",
             "def graph(r):  # -> x [N, F] float32, edge_index [2, E] int64",
             '    xr = by_id[r["x_same_as"]] if r["x_same_as"] else r',
             '    er = by_id[r["edge_index_same_as"]] if r["edge_index_same_as"] else r',
             '    x = torch.sparse_coo_tensor(xr["x_indices"], xr["x_values"], (r["num_nodes"], r["num_features"])).to_dense()',
             '    return x, torch.tensor(er["edge_index"]).view(2, -1)',
             "```", "",
             "A dataset's config holds its base graph(s) and every set, so every `*_same_as` id resolves within it.",
             "`benchmark.release.load_metamers` returns the same graphs as PyG `Data` objects (hash-checked).", "",
             "## Columns", "", "| column | type | meaning |", "|---|---|---|"]
    for name, doc in COLUMN_DOCS.items():
        lines.append(f"| `{name}` | {_type_name(SCHEMA.field(name).type)} | {doc} |")
    lines += ["", "## Storage", "",
              "One parquet row per graph object, plain columns; parquet does the compression (zstd level 9,",
              "dictionary encoding for strings and feature values, delta encoding for index lists, byte-stream-split",
              "for similarities). A tensor identical to its parent's or the base graph's (structure metamers keep the",
              "features, feature metamers the edges) is stored once and named in `x_same_as` / `edge_index_same_as`.",
              "",
              "Amazon Photo (7650 nodes x 745 binary features, 2.0M ones in the base graph) is the costly set: one",
              "feature metamer carries about as many ones as the original, so its feature shard dominates the",
              "release. Decision: Photo keeps the full graph and every node (no target subset, exact features), and",
              "the release covers it with one reference model (GCN) instead of six, keeping the release small.", "",
              *(["Continuous feature metamers are dense (one Cora graph: 2708 x 1433 values). They are stored on 16",
                 "evenly spaced levels of each feature's range (`continuous_levels`), a 4-bit dictionary code per value,",
                 "and validity is measured on the stored graph; they are built for one reference seed per model.", ""]
                if any((root / "data").rglob("*-continuous-*.parquet")) else []),
              "| dataset | shards (bytes) | checkpoints (bytes) |", "|---|---|---|"]
    for folder in sorted((root / "data").iterdir()) if (root / "data").is_dir() else []:
        if folder.name != "bases":
            base = root / "data" / "bases" / f"{folder.name}.parquet"
            shard_bytes = size(folder) + (base.stat().st_size if base.is_file() else 0)
            lines.append(f"| {folder.name} | {shard_bytes:,} | {size(root / 'checkpoints' / folder.name):,} |")
    lines += ["", f"Shards and checkpoints together: {size(root / 'data') + size(root / 'checkpoints'):,} bytes.", ""]
    return lines


_V2_INTRO = [
    "Frozen *model metamers* of graph neural networks: graphs whose activations at a stage of a reference GNN",
    "(an early hidden layer, the last hidden layer, or the logits) match the original graph's while their node",
    "features (binary `feature` metamers on the data's support, `continuous` ones relaxed to each feature's",
    "range) or edges (`structure` metamers, with an edit budget) differ. Each set holds the original and, per",
    "metamer seed, the metamer, a near twin (1% of the feature ones or edges moved on node tasks; exactly one",
    "atom type change or one bond swap on graph tasks) and a far twin changed exactly as much as its metamer",
    "(the same number of moved words per node, the same L2 distance per node for continuous metamers, the same",
    "numbers of removed and added edges) at random, so its activations are not matched.",
    "",
    "Validity (per test node or graph): the reference model keeps its prediction, and the Pearson r of the",
    "variant's and the original's activations, both centred by the population mean of each unit, beats the",
    "99th percentile of r between random distinct units (docs/validity_v2.md: how the criterion and the",
    "quantile were chosen). A set is *ranked* when near twins are at least 95% valid, far twins at most 5%",
    "(its controls pass) and at least 90% of its metamers are valid; the others are listed below with the",
    "reason and are not ranked.",
    "",
    "References are trained with seeds no submission uses (`<reference>-s<seed>`), and intake refuses a",
    "submission whose weights equal a reference checkpoint.",
    "",
]


def _v2_tables(block: dict) -> list[str]:
    def fmt(v):
        return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    lines = ["## Sets: validity, controls and convergence", "",
             "validity / near / far = share of test units valid for the metamer and its twins (mean over metamer",
             "seeds); best it. / its = best iteration and iterations run (stop: plateau of 80 steps without a new",
             "best, or 800 steps); moved words / edges removed = what the metamer (and so its far twin) changed.", "",
             "| set | stage | validity | near | far | controls | ranked | best it. | its | moved words | edges removed | homophily |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in block["sets"]:
        lines.append(f"| {row['key']} | {row.get('stage')} | {fmt(row['validity_rate'])} | "
                     f"{fmt(row.get('near_validity_rate'))} | {fmt(row.get('far_validity_rate'))} | {row.get('controls')} | "
                     f"{'yes' if row.get('ranked') else 'no'} | {fmt(row.get('best_iteration'))} | {fmt(row.get('iterations'))} | "
                     f"{fmt(row.get('moved_words'))} | {fmt(row.get('edges_removed'))} | {fmt(row.get('edge_homophily'))} |")
    unranked = [row for row in block["sets"] if not row.get("ranked")]
    lines += ["", "## Sets that are not ranked", ""]
    lines += ([f"- `{row['key']}`: {row['reason']}" for row in unranked] if unranked else ["None."])
    return lines + [""]


def _body(block: dict, name: str, storage: list[str] | None = None) -> str:
    if block["sets"] and "stage" in block["sets"][0]:
        return _body_v2(block, name, storage)
    lines = [f"# {name} (metamer-bench release {block['release']}, version {block['version']})", "",
             "Frozen *model metamers* of graph neural networks: graphs whose hidden activations at a layer of a",
             "reference GNN match the original graph's while their node features (feature metamers) or edges",
             "(structure metamers) differ. Each set holds the original, and per metamer seed the metamer, a near",
             "twin (1% benign perturbation) and a far twin (the optimisation's starting point), with per-node",
             "validity masks (the reference model keeps its prediction and the activation Pearson r beats the",
             "99.9th percentile of a random-pair null).", "",
             "Load with `benchmark.release.load_metamers(\"data_cards/v1\", dataset=..., reference_model=..., kind=...)`",
             "(PyG `Data`), score with `metamer-bench evaluate`, check with `metamer-bench verify`.", "",
             "## Reference models", "", "| dataset | model | test acc | params | weights SHA-256 |", "|---|---|---|---|---|"]
    for ref in block["reference_models"]:
        lines.append(f"| {ref['dataset']} | {ref['arch']} | {ref['test_acc']:.3f} | {ref['num_params']} | `{ref['weights_sha256'][:16]}...` |")
    lines += ["", "## Sets and success rates", "",
              "validity = share of test nodes (graphs) whose metamer is valid, mean over seeds; near/far = the same",
              "check on the twins (near twins should pass the prediction check, far twins should fail the match).", "",
              "| set | seeds | validity | rel. loss | feature cosine | edge Jaccard | near valid | far valid |",
              "|---|---|---|---|---|---|---|---|"]

    def fmt(v):
        return "-" if v is None else f"{v:.3f}"

    for row in block["sets"]:
        lines.append(f"| {row['key']} | {row['seeds']} | {fmt(row['validity_rate'])} | {fmt(row['rel_loss'])} | "
                     f"{fmt(row['feature_cosine_mean'])} | {fmt(row['edge_jaccard'])} | "
                     f"{fmt(row.get('near_validity_rate'))} | {fmt(row.get('far_validity_rate'))} |")
    lines += ["", "## Build", "",
              "Generation options: see `metamer_bench.generation` in the header. Build timing (per step and in total)",
              "is recorded in `.build/state.json`, outside the hashed files, so a rebuild gives the same card.", "",
              *(storage or []), "## Source datasets and licences", ""]
    for src in block["source_datasets"]:
        lines.append(f"- **{src['name']}**: {src['citation']}. Licence: {src['license']}.")
    lines += ["", "The metamers are derived data released under the source datasets' terms; the code is MIT.", "",
              "## Citation", "", "```bibtex", "@misc{metamerbench2026,", "  title = {metamer-bench: model metamers of graph neural networks},",
              "  year = {2026}, note = {release " + block["release"] + "}", "}", "```", ""]
    return "\n".join(lines)


def _body_v2(block: dict, name: str, storage: list[str] | None = None) -> str:
    release = block["release"]
    lines = [f"# {name} (metamer-bench release {release}, version {block['version']})", "", *_V2_INTRO,
             f"Load with `benchmark.release.load_metamers(\"data_cards/{release}\", dataset=..., reference_model=..., "
             "kind=..., layer=...)` (PyG `Data`), check with `metamer-bench verify`.", "",
             "## Reference models", "",
             "| dataset | reference | arch | seed | hidden layers | test acc | params | weights SHA-256 |",
             "|---|---|---|---|---|---|---|---|"]
    for ref in block["reference_models"]:
        lines.append(f"| {ref['dataset']} | {ref.get('reference')} | {ref['arch']} | {ref.get('seed')} | "
                     f"{ref.get('num_hidden_layers')} | {ref['test_acc']:.3f} | {ref['num_params']} | "
                     f"`{ref['weights_sha256'][:16]}...` |")
    lines += ["", *_v2_tables(block), "## Build", "",
              "Generation options: `metamer_bench.generation` in the header. Build timing (per set and in total) is",
              "recorded in `.build/state.json`, outside the hashed files, so a rebuild gives the same card.", "",
              *(storage or []), "## Source datasets and licences", ""]
    for src in block["source_datasets"]:
        lines.append(f"- **{src['name']}**: {src['citation']}. Licence: {src['license']}.")
    lines += ["", "The metamers are derived data released under the source datasets' terms; the code is MIT.", "",
              "## Citation", "", "```bibtex", "@misc{metamerbench2026,",
              "  title = {metamer-bench: model metamers of graph neural networks},",
              "  year = {2026}, note = {release " + release + "}", "}", "```", ""]
    return "\n".join(lines)


def write_card(root: str | os.PathLike, config, sets: list[dict], summaries: dict[str, dict]) -> dict:
    """Render and write ``README.md``; the metamer block is schema-checked first. Returns the block."""
    from benchmark.schemas import check_schema

    root = Path(root)
    block = metamer_block(root, config, sets, summaries)
    check_schema(block, "data_card", "metamer_bench", "the data card's metamer block is invalid")
    datasets = list(config.datasets)
    header = {
        "pretty_name": f"metamer-bench {config.release}",
        "license": "other",
        "task_categories": ["graph-ml"],
        "tags": ["graph-neural-networks", "metamers", "benchmark", "robustness"],
        "configs": hf_configs(datasets),
        "dataset_info": [{"config_name": c["config_name"], "features": hf_features()} for c in hf_configs(datasets)],
        "metamer_bench": block,
    }
    text = "---\n" + yaml.safe_dump(header, sort_keys=True, width=120) + "---\n\n" + _body(block, config.name, _storage(root))
    atomic_write_bytes(root / CARD_NAME, text.encode("utf-8"))
    return block


def read_card(root: str | os.PathLike) -> dict:
    """The YAML header of a release's ``README.md``, with its metamer block schema-checked."""
    from benchmark.schemas import check_schema

    path = Path(root) / CARD_NAME
    if not path.is_file():
        raise UserError(f"{path} not found")
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        raise UserError(f"{path}: no YAML header (a card starts with a '---' block)")
    header = yaml.safe_load(text[4 : text.index("\n---\n", 4)])
    if "metamer_bench" not in header:
        raise UserError(f"{path}: the YAML header has no metamer_bench block")
    check_schema(header["metamer_bench"], "data_card", "metamer_bench", f"{path} violates the data-card schema")
    return header
