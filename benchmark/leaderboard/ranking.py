"""Results files -> ranked leaderboard rows, one board per release (DESIGN 5).

Primary score: invariance consistency (IC) averaged over every frozen set of the release, higher
is better. An entry whose clean accuracy on some dataset is below the release's accuracy floor
(90% of the best reference model's) is listed but not ranked. Ranked entries are sorted by IC
mean (ties: entry name); walking down that order, an entry whose 95% CI overlaps the CI of its
group's first entry joins that rank group, otherwise it opens a new group. Ranks are
competition-style: a group's rank is 1 + the number of ranked entries above it ("1, 1, 3").
Comparing with the group's first entry (not with any member) keeps groups from chaining.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.errors import IntegrityError, UserError
from benchmark.files import read_json
from benchmark.metrics import FLOOR_FRACTION
from benchmark.metrics import FLOOR_TOLERANCE as _FLOOR_TOLERANCE

SCORE_NAMES = ("clean_acc", "metamer_acc", "near_acc", "far_acc", "transfer", "invariance_consistency",
               "ic_spearman")
PRIMARY = "invariance_consistency"
_INTERVAL_KEYS = ("mean", "std", "ci_low", "ci_high")


@dataclass(frozen=True)
class Interval:
    """A score's mean +- std over seeds and its 95% bootstrap CI; ``None`` where undefined."""

    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None

    def overlaps(self, other: Interval) -> bool:
        return self.ci_low <= other.ci_high and other.ci_low <= self.ci_high  # type: ignore[operator]

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "ci_low": self.ci_low, "ci_high": self.ci_high}


@dataclass(frozen=True)
class ReleaseKey:
    """The identity of a release: scores are never compared across two different keys."""

    name: str
    version: str
    manifest_sha256: str

    @property
    def slug(self) -> str:
        """A file-name-safe id: ``<name>-<version>-<first 8 hex of the manifest hash>``."""
        text = f"{self.name}-{self.version}-{self.manifest_sha256[:8]}"
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text)

    def sort_key(self) -> tuple:
        return (self.name, tuple(-p for p in _version_tuple(self.version)), self.version, self.manifest_sha256)


@dataclass
class Row:
    """One entry on one release's board; ``rank``/``group`` are ``None`` below the accuracy floor."""

    entry: str
    name: str
    authors: list[str]
    architecture: str
    num_parameters: int
    seeds: int
    tier: str
    evaluator_version: str
    release: ReleaseKey
    scores: dict[str, Interval]
    clean_acc_by_dataset: dict[str, float]
    accuracy_floor: dict[str, dict]
    cross_architecture: list[dict]
    source: str
    sets: list[dict] = field(default_factory=list)  # per frozen set: key, dataset, kind, layer, R, score means
    code_url: str | None = None
    paper_url: str | None = None
    prediction_only: bool = False  # scored from a predictions file: forward direction only, never 're-run'
    custom: bool = False  # submitted as exported programs (benchmark.programs): an architecture outside the zoo
    rank: int | None = None
    group: int | None = None

    @property
    def tier_label(self) -> str:
        """The tier cell: ``prediction-only`` for entries scored from a predictions file, else the tier."""
        return "prediction-only" if self.prediction_only else self.tier

    @property
    def origin(self) -> str:
        """Where the scored model came from: ``zoo`` (a registry architecture and its weights),
        ``custom`` (exported programs of any architecture) or ``predictions`` (outputs only)."""
        return "predictions" if self.prediction_only else "custom" if self.custom else "zoo"

    @property
    def architecture_label(self) -> str:
        """The architecture cell: the registry name, or the submitter's label with ``(custom)``
        (RobustBench marks models outside its zoo the same way)."""
        return f"{self.architecture} (custom)" if self.custom else self.architecture

    @property
    def ic(self) -> Interval:
        return self.scores[PRIMARY]

    @property
    def floor_failures(self) -> list[str]:
        """Datasets whose clean accuracy is below the floor, sorted by name."""
        return sorted(d for d, f in self.accuracy_floor.items() if not f["passed"])

    @property
    def ranked(self) -> bool:
        return not self.floor_failures

    def floor_note(self) -> str:
        """``"below accuracy floor: Cora 0.512 < 0.731"``, or ``""`` for ranked entries."""
        parts = [f"{d} {self.clean_acc_by_dataset[d]:.3f} < {self.accuracy_floor[d]['threshold']:.3f}"
                 for d in self.floor_failures]
        return f"below accuracy floor: {', '.join(parts)}" if parts else ""


@dataclass(frozen=True)
class Anchor:
    """A chance or reference row (see :mod:`benchmark.leaderboard.panel`): shown, never ranked."""

    entry: str
    label: str
    role: str  # "chance" or "reference"
    note: str
    scores: dict[str, Interval]
    sets: list[dict]


@dataclass
class Board:
    """All rows scored on one release: ranked rows first (by rank), then the unranked ones;
    ``anchors`` are the release's chance and reference rows when its panel file is present."""

    release: ReleaseKey
    rows: list[Row] = field(default_factory=list)
    anchors: list[Anchor] = field(default_factory=list)


def _version_tuple(version: str) -> tuple[int, ...]:
    """Numeric parts of a semver-like string ("1.10.0" -> (1, 10, 0)) so 1.10 sorts after 1.9."""
    return tuple(int(p) for p in re.findall(r"\d+", version))


def _fail(source: str, message: str) -> UserError:
    return UserError(f"{source}: {message}")


def _number(value: object, source: str, where: str, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(source, f"{where} must be a finite number{' or null' if optional else ''}, got {value!r}")
    return float(value)


def _object(data: dict, key: str, source: str, where: str = "") -> dict:
    value = data.get(key)
    if not isinstance(value, dict):
        raise _fail(source, f"{where}{key!r} must be a JSON object, got {type(value).__name__}")
    return value


def _require(data: dict, keys: tuple[str, ...], source: str, where: str) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise _fail(source, f"{where} lacks required key(s) {missing}; required: {list(keys)}")


def _interval(value: object, source: str, where: str, primary: bool) -> Interval:
    if not isinstance(value, dict):
        raise _fail(source, f"{where} must be an object with keys {list(_INTERVAL_KEYS)}")
    _require(value, _INTERVAL_KEYS, source, where)
    # IC ranks the board, so it must be defined; other scores may be null (e.g. transfer when
    # clean_acc equals far_acc) and then print as "n/a".
    nums = [_number(value[k], source, f"{where}.{k}", optional=not primary) for k in _INTERVAL_KEYS]
    if primary and not nums[2] <= nums[0] <= nums[3]:
        raise _fail(source, f"{where}: mean {nums[0]} lies outside its CI [{nums[2]}, {nums[3]}]")
    return Interval(*nums)


def parse_result(data: object, source: str) -> Row:
    """Validate one results JSON object and turn it into a ``Row``.

    The evaluator's JSON Schema (``benchmark/schemas/result.schema.json``, the contract its writer
    checks too) is the validation: every required key, type, range, enum and pattern, and a
    prediction-only entry being self-reported. What a schema cannot say is checked here, by
    arithmetic: the primary score (IC) is defined and its mean lies in its CI, the accuracy floor is
    not empty and covers datasets with a clean accuracy, and each floor verdict agrees with its
    numbers (an edited verdict cannot rank).

    Raises :class:`UserError` naming ``source`` and the field path, and :class:`IntegrityError` when
    the recorded accuracy-floor verdict contradicts its numbers.
    """
    from benchmark.schemas import load_schema, raise_problems, schema_problems

    raise_problems(schema_problems(data, load_schema("result"), "results"), f"{source}: not a valid results file")
    sub, rel, aggregate = data["submission"], data["release"], data["aggregate"]
    scores = {s: Interval(*(aggregate[s][k] for k in _INTERVAL_KEYS)) for s in SCORE_NAMES}
    _interval(aggregate[PRIMARY], source, f"aggregate.{PRIMARY}", primary=True)  # defined, mean inside its CI
    clean = data["clean_acc_by_dataset"]
    floor = data["accuracy_floor"]
    if not floor:
        raise _fail(source, "accuracy_floor is empty: without it the entry cannot be gated (DESIGN 5)")
    checked: dict[str, dict] = {}
    for dataset, verdict in sorted(floor.items()):
        where = f"accuracy_floor.{dataset}"
        if dataset not in clean:
            raise _fail(source, f"{where} has no clean_acc_by_dataset.{dataset} to compare with")
        best, threshold = verdict["reference_best"], verdict["threshold"]
        # The leaderboard re-derives the gate from the numbers, so an edited verdict cannot rank.
        if abs(threshold - FLOOR_FRACTION * best) > _FLOOR_TOLERANCE:
            raise IntegrityError(f"{source}: {where}.threshold {threshold} is not {FLOOR_FRACTION} x "
                                 f"reference_best {best}")
        passed = clean[dataset] >= threshold - _FLOOR_TOLERANCE
        if passed != verdict["passed"]:
            raise IntegrityError(f"{source}: {where}.passed is {verdict['passed']} but clean accuracy "
                                 f"{clean[dataset]} vs threshold {threshold} says {passed}")
        checked[dataset] = {"reference_best": float(best), "threshold": float(threshold), "passed": passed}
    cells = sorted(({"dataset": c["dataset"], "kind": c["kind"], "reference_model": c["reference_model"],
                     "metamer_acc": _optional_float(c["metamer_acc"]), "transfer": _optional_float(c["transfer"])}
                    for c in data["cross_architecture"]),
                   key=lambda c: (c["dataset"], c["kind"], c["reference_model"]))
    sets = sorted(({"key": s["key"], "dataset": s["dataset"], "reference_model": s["reference_model"],
                    "kind": s["kind"], "layer": s["layer"],
                    "scores": {name: _optional_float(v["mean"]) for name, v in sorted(s["scores"].items())}}
                   for s in data["sets"]), key=lambda s: s["key"])
    return Row(entry=data["entry"], name=sub["name"], authors=list(sub["authors"]),
               architecture=sub["architecture"], num_parameters=sub["num_parameters"], seeds=len(sub["seeds"]),
               tier=sub["tier"], evaluator_version=data["evaluator_version"],
               release=ReleaseKey(rel["name"], rel["version"], rel["manifest_sha256"]),
               scores={name: Interval(*(_optional_float(v) for v in (i.mean, i.std, i.ci_low, i.ci_high)))
                       for name, i in scores.items()},
               clean_acc_by_dataset={d: float(v) for d, v in sorted(clean.items())}, accuracy_floor=checked,
               cross_architecture=cells, source=source, sets=sets,
               code_url=sub.get("code_url") or None, paper_url=sub.get("paper_url") or None,
               prediction_only=data.get("prediction_only") is True,
               custom=sub.get("format") == "torch.export")


def _optional_float(value: float | int | None) -> float | None:
    """A schema-checked number (or null) as the float the views compute with."""
    return None if value is None else float(value)


def parse_sets(sets: object, source: str) -> list[dict]:
    """Per-set rows ``{key, dataset, reference_model, kind, layer, scores: {name: mean|None}}``, by key.

    The views (per dataset, kind, stage) are built from these rows alone, so a release with more
    stages, kinds or scores gets more columns without code changes.
    """
    if not isinstance(sets, list):
        raise _fail(source, "sets must be a list")
    out = []
    for i, item in enumerate(sets):
        where = f"sets[{i}]"
        if not isinstance(item, dict):
            raise _fail(source, f"{where} must be an object")
        _require(item, ("key", "dataset", "reference_model", "kind", "layer", "scores"), source, where)
        scores = _object(item, "scores", source, f"{where}.")
        means = {}
        for name, value in sorted(scores.items()):
            if not isinstance(value, dict) or "mean" not in value:
                raise _fail(source, f"{where}.scores.{name} must be an object with a 'mean'")
            means[name] = _number(value["mean"], source, f"{where}.scores.{name}.mean", optional=True)
        out.append({"key": str(item["key"]), "dataset": str(item["dataset"]),
                    "reference_model": str(item["reference_model"]), "kind": str(item["kind"]),
                    "layer": int(item["layer"]), "scores": means})
    return sorted(out, key=lambda s: s["key"])


def parse_anchor(data: dict, source: str) -> Anchor:
    """One row of a panel file (see :func:`benchmark.leaderboard.panel.compute_panel`)."""
    _require(data, ("entry", "label", "role", "note", "aggregate", "sets"), source, "panel row")
    aggregate = _object(data, "aggregate", source)
    scores = {s: _interval(aggregate.get(s), source, f"aggregate.{s}", primary=False) for s in SCORE_NAMES}
    return Anchor(entry=str(data["entry"]), label=str(data["label"]), role=str(data["role"]),
                  note=str(data["note"]), scores=scores, sets=parse_sets(data["sets"], source))


def load_results(results_dir: str | os.PathLike) -> list[Row]:
    """Read and validate every ``*.json`` in ``results_dir`` (sorted by file name).

    A missing folder is an error (the caller decides whether "no results yet" is fine); two files
    claiming the same entry on the same release are an error. Each row's ``tier`` is
    :func:`benchmark.rerun.derived_tier` with the submissions folder = ``results_dir``'s parent:
    ``re-run`` only with a matching rerun record in ``<parent>/reruns/``, whatever the file claims.
    """
    from benchmark.rerun import derived_tier

    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise UserError(f"results folder not found: {results_dir} (scored results are written there by "
                        "`metamer-bench evaluate submissions/<entry>`)")
    rows, seen = [], {}
    for path in sorted(results_dir.glob("*.json")):
        try:
            data = read_json(path)
        except ValueError as err:
            raise UserError(str(err)) from err
        row = parse_result(data, source=path.name)
        # The tier shown is derived from what was checked (benchmark.rerun), not the card's claim.
        row.tier = derived_tier(data, results_dir.parent)
        key = (row.release, row.entry)
        if key in seen:
            raise UserError(f"{path.name} and {seen[key]} both hold entry {row.entry!r} on release "
                            f"{row.release.name} {row.release.version}; keep one")
        seen[key] = path.name
        rows.append(row)
    return rows


def assign_ranks(rows: list[Row]) -> list[Row]:
    """Sort ``rows`` (one release) and set ``rank``/``group``; returns ranked rows, then unranked.

    See the module docstring for the rules. Unranked rows keep ``rank = group = None`` and are
    ordered by IC too, so the table reads top to bottom the same way.
    """
    releases = {r.release for r in rows}
    if len(releases) > 1:
        raise UserError(f"one ranking per release: got rows from {len(releases)} releases")
    order = sorted(rows, key=lambda r: (-r.ic.mean, r.entry))  # type: ignore[operator]
    ranked = [r for r in order if r.ranked]
    leader: Row | None = None
    group = 0
    for position, row in enumerate(ranked, start=1):
        if leader is None or not row.ic.overlaps(leader.ic):
            leader, group, rank = row, group + 1, position
        row.rank, row.group = rank, group
    unranked = [r for r in order if not r.ranked]
    for row in unranked:
        row.rank = row.group = None
    return ranked + unranked


def build_boards(rows: list[Row], results_dir: str | os.PathLike | None = None) -> list[Board]:
    """Group rows by release (name, version, manifest hash) and rank each group separately.

    With ``results_dir``, a board gets the chance and reference rows of
    ``<results_dir>/panels/<release slug>.json`` when that file exists (checked to be of the
    same release: a panel of another manifest is an error naming both hashes).
    """
    from benchmark.leaderboard.panel import panel_path, read_panel

    by_release: dict[ReleaseKey, list[Row]] = {}
    for row in rows:
        by_release.setdefault(row.release, []).append(row)
    boards = []
    for key in sorted(by_release, key=ReleaseKey.sort_key):
        board = Board(key, assign_ranks(by_release[key]))
        path = panel_path(results_dir, key.slug) if results_dir is not None else None
        if path is not None and path.is_file():
            panel = read_panel(path)
            if panel["release"].get("manifest_sha256") != key.manifest_sha256:
                raise UserError(f"{path}: panel of manifest {panel['release'].get('manifest_sha256')}, board of "
                                f"{key.manifest_sha256}; regenerate it with `metamer-bench leaderboard --release "
                                "<release folder>`")
            board.anchors = [parse_anchor(r, path.name) for r in panel["rows"]]
        boards.append(board)
    return boards
