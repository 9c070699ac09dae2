"""A release opened once: :class:`Release` holds its identity, per-dataset facts, reference cards and sets.

    release = Release.open("data_cards/v1")            # reads and schema-checks MANIFEST.json, once
    release.identity                                   # {"name", "version", "manifest_sha256"}
    release.dims["Cora"]                               # DatasetDims(num_features=1433, num_classes=7, task="node")
    release.reference_best("Cora")                     # (best reference test accuracy, its model)
    release.load_sets(dataset="Cora")                  # FrozenSet objects, files checked per the mode

Why one object: the manifest used to be read and interpreted in five places (the loader, the
evaluator's identity, reference cards, class counts and reference accuracies, ``validate``'s
dimensions and the baselines script), each with its own reading of the same facts. Every consumer
now takes a :class:`Release` (or a folder it opens into one) and asks it.

What a release knows before any shard is read (:attr:`Release.dims`), so that a submission card
can be checked first and a typo costs no release load:

- release v2 onwards: the manifest's ``datasets`` table, written at build time (OGB's
  ``master.csv`` serves its loader and its Evaluator the same way);
- release v1 (no table): the reference checkpoint cards the manifest lists
  (``checkpoints/<dataset>/<arch>/card.json``: ``in_channels``, ``out_channels``, ``task``).

How much is checked is a :class:`VerificationMode`, after Hugging Face datasets' own:

- ``ALL_CHECKS`` (the default): every file is SHA-256 checked against the manifest before it is read;
- ``BASIC_CHECKS``: every file read must be listed, exist and have its listed size (no hashing);
- ``NO_CHECKS``: nothing beyond the manifest itself.

The manifest is always schema-checked: nothing can be read without it. Files are checked when
first read (a release of many sets is not hashed whole to score one dataset); ``metamer-bench
verify`` (:mod:`benchmark.release.verify`) is the full audit.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from benchmark.errors import IntegrityError, UserError, unknown_choice
from benchmark.files import read_json, sha256_file
from benchmark.records import FrozenSet, GraphRecord
from benchmark.release.locate import resolve_release
from benchmark.release.manifest import MANIFEST_NAME, check_files, read_manifest

# The fields a set can be selected by, in the order load_sets takes them.
SELECTORS = ("dataset", "reference_model", "kind", "layer")


class VerificationMode(str, Enum):
    """How much of a release is checked against its manifest before it is read (module docstring)."""

    ALL_CHECKS = "all_checks"
    BASIC_CHECKS = "basic_checks"
    NO_CHECKS = "no_checks"

    @classmethod
    def of(cls, value: VerificationMode | str | bool) -> VerificationMode:
        """A mode from itself, its value (``"all_checks"``) or the older ``verify`` flag
        (``True``: ``ALL_CHECKS``, ``False``: ``NO_CHECKS``)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, bool):
            return cls.ALL_CHECKS if value else cls.NO_CHECKS
        try:
            return cls(str(value).lower())
        except ValueError:
            raise unknown_choice("verification mode", value, [m.value for m in cls]) from None


@dataclass(frozen=True)
class ReverseProtocol:
    """The reverse direction a release states (``generator.config.reverse``, scores v2, DESIGN 4).

    The evaluator makes metamers of a submitted model on ``datasets`` of ``kinds``, one per metamer
    seed of ``seeds``, at the release's ``stages`` (``early``/``late``/``logits``, mapped to each
    model's own layers; the block's own ``stages`` if it states them), with the release's engine
    options ``metamer_options`` (the block's own ``metamer_options`` over them) and its validity
    criterion; the release's reference checkpoints (the panel) classify them. Stated in the
    manifest so that every evaluation of one release runs the same protocol.
    """

    datasets: tuple[str, ...]
    kinds: tuple[str, ...]
    seeds: tuple[int, ...]
    stages: tuple[str, ...]
    metamer_options: dict
    validity: str
    validity_quantile: float

    def to_dict(self) -> dict:
        """JSON form (the results file's ``reverse.protocol``)."""
        return {"datasets": list(self.datasets), "kinds": list(self.kinds), "seeds": list(self.seeds),
                "stages": list(self.stages), "metamer_options": dict(sorted(self.metamer_options.items())),
                "validity": self.validity, "validity_quantile": self.validity_quantile}


@dataclass(frozen=True)
class DatasetDims:
    """What a dataset fixes in a model config: input features, classes and task."""

    num_features: int
    num_classes: int
    task: str


class Release:
    """One frozen release folder, its manifest read and schema-checked once (see the module docstring).

    Build it with :meth:`open`; pass the object on instead of the folder, so nothing reads the
    manifest again.
    """

    def __init__(self, root: Path, manifest: dict, manifest_sha256: str,
                 mode: VerificationMode = VerificationMode.ALL_CHECKS) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self.manifest_sha256 = manifest_sha256
        self.mode = VerificationMode.of(mode)
        self._checked: set[str] = set()

    @classmethod
    def open(cls, release: Release | str | os.PathLike | None = None,
             verification: VerificationMode | str | bool | None = None) -> Release:
        """The release at ``release`` (a folder or a name ``vN``, by
        :func:`benchmark.release.locate.resolve_release`; ``None``: the default release), checked per
        ``verification`` (``None``: ``ALL_CHECKS`` for a folder).

        An already opened :class:`Release` is passed on as it is (``verification`` None or its own
        mode), else re-wrapped with the mode asked for (the manifest is not read again).
        """
        if isinstance(release, Release):
            mode = release.mode if verification is None else VerificationMode.of(verification)
            return release if release.mode is mode else cls(release.root, release.manifest,
                                                             release.manifest_sha256, mode)
        mode = VerificationMode.ALL_CHECKS if verification is None else VerificationMode.of(verification)
        root = resolve_release(release)
        manifest = read_manifest(root)
        return cls(root, manifest, sha256_file(root / MANIFEST_NAME), mode)

    def __repr__(self) -> str:
        return f"Release({str(self.root)!r}, {self.name} {self.version}, {self.mode.name})"

    # -- identity -------------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def identity(self) -> dict[str, str]:
        """``{"name", "version", "manifest_sha256"}``: what scores are bound to (results files, panels)."""
        return {"name": self.name, "version": self.version, "manifest_sha256": self.manifest_sha256}

    # -- sets -----------------------------------------------------------------------------------------------------
    @property
    def sets(self) -> list[dict]:
        """The manifest's set entries (``key``, ``dataset``, ``task``, ``reference_model``, ``kind``,
        ``layer``, ``shard``, ...; v2 adds ``reference``, ``stage``, ``ranked``)."""
        return self.manifest["sets"]

    @property
    def datasets(self) -> list[str]:
        """The datasets the release scores: those of its sets, sorted."""
        return sorted({s["dataset"] for s in self.sets})

    def select(self, dataset: str | None = None, reference_model: str | None = None, kind: str | None = None,
               layer: int | None = None) -> list[dict]:
        """Set entries matching every given field; a value no set has is a :class:`UserError` listing the valid ones."""
        sets = self.sets
        for name, value in zip(SELECTORS, (dataset, reference_model, kind, layer)):
            if value is None:
                continue
            valid = sorted({str(s[name]) for s in sets})
            if str(value) not in valid:
                raise unknown_choice(name.replace("_", " "), value, valid)
            sets = [s for s in sets if str(s[name]) == str(value)]
        return sets

    def load_sets(self, dataset: str | None = None, reference_model: str | None = None, kind: str | None = None,
                  layer: int | None = None) -> list[FrozenSet]:
        """The chosen sets (see :meth:`select`) with their records decoded; their shards and base
        graphs are checked first, per the mode."""
        from benchmark.release.shards import read_records

        chosen = self.select(dataset, reference_model, kind, layer)
        bases_of = self.manifest["bases"]
        self.check(sorted({s["shard"] for s in chosen} | {bases_of[s["dataset"]] for s in chosen}))
        bases: dict[str, dict[str, GraphRecord]] = {}
        out = []
        for entry in chosen:
            name = entry["dataset"]
            if name not in bases:
                bases[name] = {r.id: r for r in read_records(self.root / bases_of[name])}
            records = read_records(self.root / entry["shard"], bases[name])
            originals = [r for r in records if r.role == "original"]
            variants = [r for r in records if r.role != "original"]
            out.append(FrozenSet(name, entry["task"], entry["reference_model"], entry["kind"], entry["layer"],
                                 originals, variants))
        return out

    # -- files ------------------------------------------------------------------------------------------------------
    def check(self, files: list[str] | None = None) -> None:
        """Check ``files`` (relative paths; None: every listed file) against the manifest per the mode;
        raise :class:`IntegrityError` naming every bad file. A file passes once per object."""
        if self.mode is VerificationMode.NO_CHECKS:
            return
        wanted = sorted(self.manifest["files"] if files is None else files)
        todo = [rel for rel in wanted if rel not in self._checked]
        if not todo:
            return
        if self.mode is VerificationMode.ALL_CHECKS:
            problems = check_files(self.root, self.manifest, only=todo)
        else:
            problems = self._size_problems(todo)
        if problems:
            basic = "" if self.mode is VerificationMode.ALL_CHECKS else f" ({self.mode.value})"
            raise IntegrityError(f"release {self.root} failed verification{basic}:\n  " + "\n  ".join(problems))
        self._checked.update(todo)

    def _size_problems(self, files: list[str]) -> list[str]:
        """BASIC_CHECKS: listed, present, of the listed size."""
        problems = []
        for rel in files:
            entry = self.manifest["files"].get(rel)
            path = self.root / rel
            if entry is None:
                problems.append(f"{rel}: not listed in {MANIFEST_NAME}")
            elif not path.is_file():
                problems.append(f"{rel}: missing")
            elif path.stat().st_size != entry["bytes"]:
                problems.append(f"{rel}: {path.stat().st_size} bytes, the manifest lists {entry['bytes']}")
        return problems

    # -- reference checkpoints and per-dataset facts ------------------------------------------------------------
    def _listed_checkpoint_files(self, name: str) -> list[str]:
        """``checkpoints/<dataset>/<arch>/<name>`` files the manifest lists, sorted."""
        return sorted(rel for rel in self.manifest["files"]
                      if len(parts := rel.split("/")) == 4 and parts[0] == "checkpoints" and parts[3] == name)

    @functools.cached_property
    def reference_cards(self) -> dict[str, dict[str, dict]]:
        """``{dataset: {arch: card}}`` from the ``checkpoints/<dataset>/<arch>/card.json`` files the
        manifest lists (an unlisted card is ignored), each checked per the mode before it is read."""
        listed = self._listed_checkpoint_files("card.json")
        self.check(listed)
        cards: dict[str, dict[str, dict]] = {}
        for rel in listed:
            _, dataset, arch, _ = rel.split("/")
            cards.setdefault(dataset, {})[arch] = read_json(self.root / rel)
        return cards

    def reference_weights(self) -> dict[str, dict[str, Path]]:
        """``{dataset: {"checkpoints/<dataset>/<arch>": weights path}}`` of the reference models that no
        submission may copy, checked per the mode, when the manifest declares reference seeds
        (``generator.config.reference_seeds``); ``{}`` for a release that declares none (v1, whose
        references are the baselines' seed 0 by construction)."""
        if not self.manifest["generator"]["config"].get("reference_seeds"):
            return {}
        listed = self._listed_checkpoint_files("model.safetensors")
        self.check(listed)
        out: dict[str, dict[str, Path]] = {}
        for rel in listed:
            _, dataset, arch, _ = rel.split("/")
            out.setdefault(dataset, {})[f"checkpoints/{dataset}/{arch}"] = self.root / rel
        return out

    @functools.cached_property
    def dims(self) -> dict[str, DatasetDims]:
        """``{dataset: DatasetDims}`` for every dataset the release scores, without reading any shard:
        the manifest's ``datasets`` table (v2 onwards), else the reference checkpoint cards (v1)."""
        facts = self.manifest.get("datasets")
        if facts is not None:
            missing = [d for d in self.datasets if d not in facts]
            if missing:
                raise UserError(f"{self.root / MANIFEST_NAME}: datasets lacks {missing}, which sets[].dataset name; "
                                f"it lists {sorted(facts)}")
            return {name: DatasetDims(facts[name]["num_features"], facts[name]["num_classes"], facts[name]["task"])
                    for name in self.datasets}
        dims = {}
        for dataset in self.datasets:
            found = {(c["config"]["in_channels"], c["config"]["out_channels"], c["config"].get("task", "node"))
                     for c in self.reference_cards.get(dataset, {}).values() if isinstance(c.get("config"), dict)}
            if len(found) != 1:
                raise UserError(f"{self.root}: the reference checkpoint cards of {dataset} (checkpoints/{dataset}/"
                                f"<arch>/card.json) should give one (in_channels, out_channels, task), found "
                                f"{sorted(found)}")
            dims[dataset] = DatasetDims(*found.pop())
        return dims

    @functools.cached_property
    def reverse(self) -> ReverseProtocol | None:
        """The reverse direction's protocol the manifest states, or ``None`` (release v1 and any release
        built without a ``reverse:`` block: forward scores only)."""
        config = self.manifest["generator"]["config"]
        block = config.get("reverse")
        if not block:
            return None
        unknown = sorted(set(block) - {"datasets", "kinds", "seeds", "metamer_options", "stages"})
        missing = sorted({"datasets", "kinds", "seeds"} - set(block))
        if unknown or missing:
            raise UserError(f"{self.root / MANIFEST_NAME}: generator.config.reverse must have the keys datasets, "
                            f"kinds, seeds and optionally metamer_options, stages; unknown {unknown}, missing {missing}")
        absent = sorted(set(block["datasets"]) - set(self.datasets))
        if absent:
            raise UserError(f"{self.root / MANIFEST_NAME}: generator.config.reverse names dataset(s) {absent} the "
                            f"release has no sets of; its datasets: {', '.join(self.datasets)}")
        # The reverse block's own stages and engine options win over the release's.
        stages = block.get("stages") or config.get("stages") or ["late"]  # none stated: the last hidden layer
        options = {**(config.get("metamer_options") or {}), **(block.get("metamer_options") or {})}
        return ReverseProtocol(tuple(block["datasets"]), tuple(block["kinds"]), tuple(int(s) for s in block["seeds"]),
                               tuple(stages), options,
                               str(config.get("validity", "centred")), float(config.get("validity_quantile", 0.99)))

    def panel(self, dataset: str, device: str = "cpu") -> list[tuple[str, object]]:
        """The reference panel of ``dataset``: ``[(name, model)]`` for every reference checkpoint the
        manifest lists under ``checkpoints/<dataset>/`` (sorted by name, e.g. ``gcn-s1000``), each card and
        weights file checked per the mode and loaded in eval mode. These observers are never submissions
        (intake refuses copies of them), which is what makes them judges of a submission's metamers."""
        from benchmark.checkpoints import load_checkpoint

        names = sorted(rel.split("/")[2] for rel in self._listed_checkpoint_files("model.safetensors")
                       if rel.split("/")[1] == dataset)
        if not names:
            raise UserError(f"{self.root}: no reference checkpoints of {dataset} (checkpoints/{dataset}/<name>/"
                            f"model.safetensors in {MANIFEST_NAME}); the reverse direction needs a panel")
        self.check([f"checkpoints/{dataset}/{n}/{f}" for n in names for f in ("card.json", "model.safetensors")])
        return [(name, load_checkpoint(self.root / "checkpoints" / dataset / name, device)[0]) for name in names]

    def original(self, dataset: str) -> GraphRecord:
        """The original graph of a node-task ``dataset`` as its sets hold it: features, edges, labels, and
        ``target`` = the units the release scores (the public split's test nodes). Read from the
        smallest shard of the dataset's sets (checked per the mode), not from the raw data, so the
        reverse direction runs on exactly the release's units."""
        from benchmark.release.shards import read_records

        entries = [s for s in self.select(dataset=dataset)]
        if entries[0]["task"] != "node":
            raise UserError(f"{dataset} is a {entries[0]['task']}-task dataset; the reverse direction runs on "
                            f"node-task datasets (graph tasks are not in a reverse protocol yet)")
        entry = min(entries, key=lambda s: (self.manifest["files"].get(s["shard"], {}).get("bytes", 0), s["key"]))
        base = self.manifest["bases"][dataset]
        self.check([entry["shard"], base])
        bases = {r.id: r for r in read_records(self.root / base)}
        originals = [r for r in read_records(self.root / entry["shard"], bases) if r.role == "original"]
        if len(originals) != 1:
            raise IntegrityError(f"{self.root / entry['shard']}: a node-task set holds one original, found {len(originals)}")
        return originals[0]

    def reference_best(self, dataset: str) -> tuple[float, str]:
        """``(accuracy, model)``: the best ``metrics.test_acc`` over the dataset's reference checkpoint
        cards (ties: the first model by name); the accuracy floor is a fraction of it."""
        accs = {arch: card.get("metrics", {}).get("test_acc")
                for arch, card in self.reference_cards.get(dataset, {}).items()}
        accs = {a: float(v) for a, v in accs.items() if isinstance(v, (int, float))}
        if not accs:
            raise UserError(f"{self.root}: no reference checkpoint card with metrics.test_acc for {dataset} under "
                            f"checkpoints/{dataset}/<arch>/card.json; the accuracy floor needs one")
        arch = max(sorted(accs), key=lambda a: accs[a])
        return accs[arch], arch
