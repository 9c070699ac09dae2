"""The release data card: ``README.md`` in Hugging Face dataset-card form.

A YAML header (``configs`` pointing at the shards, ``dataset_info``, and a ``metamer_bench``
block validated by ``benchmark/schemas/data_card.schema.json``) and a human-readable body.
"""
from __future__ import annotations

import os
import statistics
from pathlib import Path

import yaml

from benchmark.errors import UserError
from benchmark.files import atomic_write_bytes, read_json
from benchmark.graphs import get_spec

CARD_NAME = "README.md"


def _mean(values):
    values = [v for v in values if v is not None]
    return round(statistics.mean(values), 4) if values else None


def metamer_block(root: Path, config, sets: list[dict], summaries: dict[str, dict], build: dict) -> dict:
    references, seen = [], set()
    for entry in sets:
        pair = (entry["dataset"], entry["reference_model"])
        if pair in seen:
            continue
        seen.add(pair)
        card = read_json(root / entry["checkpoint"] / "card.json")
        references.append({"dataset": pair[0], "arch": pair[1], "checkpoint": entry["checkpoint"],
                           "weights_sha256": card["weights_sha256"], "test_acc": round(card["metrics"]["test_acc"], 4),
                           "num_params": card["metrics"]["num_params"]})
    set_rows = []
    for entry in sets:
        per_seed = summaries.get(f"set/{entry['dataset']}/{entry['reference_model']}/{entry['kind']}", {}).values()
        set_rows.append({"key": entry["key"], "seeds": len(entry["seeds"]),
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
            "sets": set_rows, "source_datasets": sources, "build": build}


def _storage(root: Path) -> list[str]:
    """The card's storage section: how tensors are encoded and what each dataset's files weigh."""
    def size(folder: Path) -> int:
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0

    lines = ["## Storage", "",
             "One parquet row per graph object (zstd level 9). Every tensor is stored with the cheapest codec that",
             "decodes to it *exactly* (checked when writing): `ref` (identical to the parent's or the base graph's",
             "tensor: structure metamers keep the features, feature metamers the edges, so these are stored once in",
             "`data/bases/`), `xor` (binary features or edges that differ from the parent: near twins), `csr`",
             "(binary features as column indices per row, no values), `upper` (symmetric edges once per pair),",
             "`dense`/`raw` otherwise. Read rows with `load_metamers`/`load_frozen_sets`, which resolve the codecs.",
             "",
             "Amazon Photo (7650 nodes x 745 binary features, 2.0M ones in the base graph) is the costly set: one",
             "feature metamer carries about as many ones as the original, so its feature shard dominates the",
             "release. Decision: Photo keeps the full graph and every node (no target subset, exact features), and",
             "the release covers it with one reference model (GCN) instead of six, keeping the release small.", "",
             "| dataset | shards (bytes) | checkpoints (bytes) |", "|---|---|---|"]
    for folder in sorted((root / "data").iterdir()) if (root / "data").is_dir() else []:
        if folder.name != "bases":
            base = root / "data" / "bases" / f"{folder.name}.parquet"
            shard_bytes = size(folder) + (base.stat().st_size if base.is_file() else 0)
            lines.append(f"| {folder.name} | {shard_bytes:,} | {size(root / 'checkpoints' / folder.name):,} |")
    lines += ["", f"Shards and checkpoints together: {size(root / 'data') + size(root / 'checkpoints'):,} bytes.", ""]
    return lines


def _body(block: dict, name: str, storage: list[str] | None = None) -> str:
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
    build = block["build"]
    lines += ["", "## Build", "",
              f"Total build compute: {build['wall_s']:.0f} s ({build['wall_s'] / 60:.1f} min) on {build['machine']}",
              "(sum of the training and generation steps; the machine was shared with other jobs while it ran).",
              "Generation options: see `metamer_bench.generation` in the header.", "",
              *(storage or []), "## Source datasets and licences", ""]
    for src in block["source_datasets"]:
        lines.append(f"- **{src['name']}**: {src['citation']}. Licence: {src['license']}.")
    lines += ["", "The metamers are derived data released under the source datasets' terms; the code is MIT.", "",
              "## Citation", "", "```bibtex", "@misc{metamerbench2026,", "  title = {metamer-bench: model metamers of graph neural networks},",
              "  year = {2026}, note = {release " + block["release"] + "}", "}", "```", ""]
    return "\n".join(lines)


def write_card(root: str | os.PathLike, config, sets: list[dict], summaries: dict[str, dict], build: dict) -> dict:
    """Render and write ``README.md``; the metamer block is schema-checked first. Returns the block."""
    from benchmark.submissions import check_schema

    root = Path(root)
    block = metamer_block(root, config, sets, summaries, build)
    check_schema(block, "data_card", "metamer_bench", "the data card's metamer block is invalid")
    datasets = list(config.datasets)
    header = {
        "pretty_name": f"metamer-bench {config.release}",
        "license": "other",
        "task_categories": ["graph-ml"],
        "tags": ["graph-neural-networks", "metamers", "benchmark", "robustness"],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": [
                        f"data/{d}/*.parquet" for d in datasets]}]}]
                   + [{"config_name": d, "data_files": [{"split": "train", "path": f"data/{d}/*.parquet"}]} for d in datasets]
                   + [{"config_name": "bases", "data_files": [{"split": "train", "path": "data/bases/*.parquet"}]}],
        "dataset_info": {"features": [{"name": n, "dtype": "string"} for n in ("id", "role", "parent_id", "dataset",
                                                                              "reference_model", "kind")]
                         + [{"name": n, "dtype": "int32"} for n in ("layer", "seed", "num_nodes")]},
        "metamer_bench": block,
    }
    text = "---\n" + yaml.safe_dump(header, sort_keys=True, width=120) + "---\n\n" + _body(block, config.name, _storage(root))
    atomic_write_bytes(root / CARD_NAME, text.encode("utf-8"))
    return block


def read_card(root: str | os.PathLike) -> dict:
    """The YAML header of a release's ``README.md``, with its metamer block schema-checked."""
    from benchmark.submissions import check_schema

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
