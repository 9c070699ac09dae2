"""Metamer quality on Cora for every zoo model at its last hidden layer, with loss curves.

Per model: feature metamers (relative activation loss, validity rate on test nodes, feature
cosine to the original) and structure metamers (validity rate, edge Jaccard), plus the far
twin's validity as the chance level. Structure metamers are also run without the original
edges among the candidates, which is where the paper's "structure metamers do not exist"
comes from. Reference models are loaded from --checkpoints/<model> when present, else trained.
Writes docs/figures/quality_cora.json and loss-curve PNGs.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from benchmark.files import atomic_write_json, read_json  # noqa: E402
from benchmark.graphs import load_dataset  # noqa: E402
from benchmark.metamers import generate_metamers, node_validity, null_threshold  # noqa: E402
from benchmark.metrics.distances import edge_jaccard, feature_cosine  # noqa: E402
from benchmark.models import default_config, model_names  # noqa: E402

SETTINGS = {
    "feature": dict(kind="feature"),
    "structure": dict(kind="structure"),
    "structure_no_orig": dict(kind="structure", include_original_edges=False),
}


def reference(dataset, arch: str, checkpoints: Path | None, device: str = "cpu"):
    from benchmark.checkpoints import load_checkpoint
    from benchmark.training import train_model

    if checkpoints is not None and (checkpoints / arch / "card.json").is_file():
        model, card = load_checkpoint(checkpoints / arch)
        return model, card.get("metrics", {}).get("test_acc")
    model, metrics = train_model(dataset, default_config(arch, dataset.num_features, dataset.num_classes), seed=0,
                                 device=device)
    return model, metrics["test_acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=model_names())
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-iterations", type=int, default=200)
    parser.add_argument("--checkpoints", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/figures/quality_cora.json"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="metamer option for every setting, value as JSON (e.g. pearson_weight=1)")
    args = parser.parse_args()
    options = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.option)}
    dataset = load_dataset("Cora")
    test = dataset.index("test")
    rows = read_json(args.out)["rows"] if args.out.exists() else []
    for arch in args.models:
        model, acc = reference(dataset, arch, args.checkpoints, args.device)
        model = model.to(args.device).eval()
        data = dataset.data.to(args.device)
        with torch.no_grad():
            thr = null_threshold(model.embed(data.x, data.edge_index))
        curves = {}
        for name in args.settings:
            setting = dict(SETTINGS[name])
            kind = setting.pop("kind")
            r = generate_metamers(model, data, kind, [args.seed], progress=True, max_iterations=args.max_iterations,
                                  **setting, **options)[0]
            dev = args.device
            meta = node_validity(model, data.x, data.edge_index, r.x.to(dev), r.edge_index.to(dev), threshold=thr)
            far = node_validity(model, data.x, data.edge_index, r.start_x.to(dev), r.start_edge_index.to(dev),
                                threshold=thr)
            row = {"model": arch, "setting": name, "kind": kind, "layer": r.layer, "test_acc": acc,
                   "options": options, "device": dev,
                   "rel_loss": r.rel_loss, "start_loss": r.start_loss, "validity_rate": meta.rate(test),
                   "same_prediction_rate": float(meta.same_prediction[test].float().mean()),
                   "pearson_test_mean": float(meta.pearson[test].mean()), "null_threshold": thr,
                   "far_validity_rate": far.rate(test),
                   "feature_cosine_mean": float(feature_cosine(data.x.cpu(), r.x).mean()),
                   "edge_jaccard": edge_jaccard(data.edge_index.cpu(), r.edge_index, data.num_nodes),
                   "iterations": r.iterations, "best_iteration": r.best_iteration, "wall_s": r.wall_s,
                   "step_ms": r.step_s * 1e3, "status": r.status}
            rows = [x for x in rows if not (x["model"] == arch and x["setting"] == name)] + [row]
            curves[name] = r.loss_curve
            print(f"{arch:9s} {name:18s} loss {r.start_loss:.4f} -> {r.rel_loss:.4f}  valid {row['validity_rate']:.3f} "
                  f"(far {row['far_validity_rate']:.3f}, same-pred {row['same_prediction_rate']:.3f}, "
                  f"r {row['pearson_test_mean']:.3f} vs null {thr:.3f})  cos {row['feature_cosine_mean']:.3f}  "
                  f"jac {row['edge_jaccard']:.3f}  {r.wall_s:.1f} s", flush=True)
            atomic_write_json(args.out, {"rows": rows})
        fig, ax = plt.subplots(figsize=(5, 3.4))
        for name, curve in curves.items():
            ax.semilogy(curve, label=name)
        ax.set_xlabel("Adam step")
        ax.set_ylabel("relative activation loss")
        ax.set_title(f"Cora, {arch}, layer {model.default_layer}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.out.parent / f"loss_cora_{arch}.png", dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    main()
