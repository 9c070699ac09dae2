"""A submission's card: where it lives, what an entry may be called, and reading it without any weights.

``submissions/<entry>/submission.json`` names the architecture and its config, the training
seeds and, per dataset, one weights file per seed with its SHA-256
(``benchmark/schemas/submission.schema.json``). :func:`read_submission` runs the first four
classes of checks of :mod:`benchmark.submissions` and stops at the first class with a problem,
listing every problem of that class:

1. ``card``: the folder and a parseable ``submission.json`` exist (a real folder with a valid,
   unreserved entry name; a card of at most :data:`MAX_CARD_BYTES`);
2. ``schema``: the card matches its schema (exported programs: ``program_submission``);
3. ``contents``: a registry architecture, known datasets covering the release's, one weights file
   per declared seed;
4. ``paths``: every weights path is relative, named ``seed-<n>.safetensors`` and stays inside the
   entry folder (``..``, absolute paths and symlinks out are refused).

Why a module of its own: reading a card needs no model, no weights and no release. The
leaderboard's provenance check and the predictions route read cards and entry names through this
module; loading and checking weights (classes 5-8) is submission intake,
:func:`benchmark.submissions.validate_submission`, which starts here.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from benchmark.errors import IntegrityError, UserError, unknown_choice
from benchmark.files import read_json, sha256_file
from benchmark.schemas import check_schema, raise_problems

if TYPE_CHECKING:  # a card is read without the release package (torch_geometric)
    from benchmark.release.opened import DatasetDims

SUBMISSION_FILE = "submission.json"
MIN_SEEDS = 3  # DESIGN 4: training seeds per submission (both card schemas' seeds.minItems)
ENTRY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Folder names the project itself uses next to the entries: results files live in submissions/results/,
# rerun records (benchmark.rerun) in submissions/reruns/.
RESERVED_ENTRIES = frozenset({"results", "reruns"})
# A card is a few KiB; the cap refuses a hostile one before it is read.
MAX_CARD_BYTES = 1 << 20
_WEIGHTS_NAME = re.compile(r"^seed-(0|[1-9][0-9]*)\.safetensors$")


# -- The card ---------------------------------------------------------------------------------------------------------

@dataclass
class Submission:
    """A submission whose card passed the schema and content checks (weights not yet loaded)."""

    entry: str
    folder: Path
    card: dict
    card_sha256: str

    @property
    def name(self) -> str:
        return self.card["name"]

    @property
    def architecture(self) -> str:
        return self.card["architecture"]["name"]

    @property
    def seeds(self) -> list[int]:
        return sorted(self.card["seeds"])

    @property
    def datasets(self) -> list[str]:
        return sorted(self.card["datasets"])

    def config_dict(self, dataset: str, dims: DatasetDims) -> dict:
        """The full ModelConfig fields for ``dataset``: architecture config, dataset overrides, dims."""
        values = {**self.card["architecture"]["config"], **self.card["datasets"][dataset].get("config", {})}
        values["arch"] = self.architecture
        values.update(in_channels=dims.num_features, out_channels=dims.num_classes, task=dims.task)
        return values

    def config_problems(self, dataset: str, dims: DatasetDims) -> list[str]:
        """Where the card's stated dims or arch disagree with the dataset / architecture name."""
        from benchmark.models.config import DATASET_FIELDS

        problems = []
        for where, config in (("architecture.config", self.card["architecture"]["config"]),
                              (f"datasets.{dataset}.config", self.card["datasets"][dataset].get("config", {}))):
            if "arch" in config and config["arch"] != self.architecture:
                problems.append(f"{where}.arch is {config['arch']!r} but architecture.name is {self.architecture!r}")
            expected = {"in_channels": dims.num_features, "out_channels": dims.num_classes, "task": dims.task}
            for key in DATASET_FIELDS:
                if key in config and config[key] != expected[key]:
                    problems.append(f"{where}.{key} is {config[key]!r} but {dataset} has {key} = {expected[key]!r}")
        return problems

    def weights_entry(self, dataset: str, seed: int) -> dict:
        return self.card["datasets"][dataset]["weights"][str(seed)]

    def weights_path(self, dataset: str, seed: int) -> Path:
        return self.folder / self.weights_entry(dataset, seed)["path"]


def _read_card(folder: Path) -> tuple[str, dict, str]:
    """Class 1 (card): the folder, its name and a parseable ``submission.json``."""
    if not folder.is_dir():
        raise UserError(f"submission folder not found: {folder} (expected submissions/<entry>/ with {SUBMISSION_FILE})")
    if folder.is_symlink():
        raise IntegrityError(f"{folder} is a symlink to {folder.resolve()}; an entry must be a real folder "
                             "(its results file is written next to it)")
    entry = folder.resolve().name
    if not ENTRY_PATTERN.match(entry):
        raise UserError(f"entry folder name {entry!r} is not valid: 1-64 letters, digits, '.', '_' and '-', "
                        "starting with a letter or digit")
    if entry.lower() in RESERVED_ENTRIES:
        raise UserError(f"entry folder name {entry!r} is reserved (the project uses "
                        f"{', '.join(sorted(RESERVED_ENTRIES))}); choose another name")
    card_path = folder / SUBMISSION_FILE
    if not card_path.is_file():
        raise UserError(f"{card_path} not found; every submission folder holds a {SUBMISSION_FILE} "
                        f"(see benchmark/schemas/submission.schema.json)")
    try:
        card = read_json(card_path, max_bytes=MAX_CARD_BYTES)
    except ValueError as err:
        raise UserError(f"card: {err}") from err
    return entry, card, sha256_file(card_path)


def read_submission(folder: str | os.PathLike, datasets: list[str] | None = None) -> Submission:
    """Classes 1-4: the card exists, matches its schema, makes sense and names safe paths.

    ``datasets``: the datasets the release needs (each must be in the card); None skips that check.
    """
    from benchmark.graphs import dataset_names
    from benchmark.models import MODEL_REGISTRY

    folder = Path(folder)
    entry, card, card_sha = _read_card(folder)
    if isinstance(card, dict) and "format" in card:  # exported programs (benchmark/programs.py)
        from benchmark.programs import PROGRAM_FORMAT, read_program_submission

        if card["format"] != PROGRAM_FORMAT:
            raise UserError(f"{folder / SUBMISSION_FILE}: format: {card['format']!r}; valid formats: "
                            f"{PROGRAM_FORMAT} (exported programs), or no format field (registry weights)")
        return read_program_submission(folder / SUBMISSION_FILE, entry, card, card_sha, datasets)
    check_schema(card, "submission", "submission", f"{folder / SUBMISSION_FILE}: schema violation")

    problems = []
    arch = card["architecture"]["name"]
    if arch not in MODEL_REGISTRY:
        problems.append(f"architecture.name: {unknown_choice('model', arch, MODEL_REGISTRY)}")
    known = set(dataset_names())
    for name in sorted(card["datasets"]):
        if name not in known:
            problems.append(f"datasets.{name}: {unknown_choice('dataset', name, known)}")
    if datasets is not None:
        missing = sorted(set(datasets) - set(card["datasets"]))
        if missing:
            problems.append(f"datasets: the release scores {sorted(datasets)} but the card has no weights for {missing}")
    seeds = {str(s) for s in card["seeds"]}
    for name, spec in sorted(card["datasets"].items()):
        given = set(spec["weights"])
        if given != seeds:
            lacking = sorted(seeds - given, key=int)
            extra = sorted(given - seeds, key=int)
            text = []
            if lacking:
                text.append(f"no weights file for seed(s) {', '.join(lacking)}")
            if extra:
                text.append(f"weights for undeclared seed(s) {', '.join(extra)}")
            problems.append(f"datasets.{name}.weights: {'; '.join(text)} (seeds declared: {card['seeds']})")
    raise_problems(problems, f"{folder / SUBMISSION_FILE}: invalid contents")

    sub = Submission(entry, folder, card, card_sha)
    raise_problems(_path_problems(sub), f"{folder}: unsafe or misnamed weights paths", IntegrityError)
    return sub


def _path_problems(sub: Submission) -> list[str]:
    """Class 4 (paths): relative, ``seed-<n>.safetensors``, inside the folder even after symlinks."""
    problems = []
    root = sub.folder.resolve()
    seen: dict[str, str] = {}
    for dataset in sub.datasets:
        for seed in sub.seeds:
            raw = sub.weights_entry(dataset, seed)["path"]
            where = f"datasets.{dataset}.weights.{seed}.path {raw!r}"
            pure = PurePosixPath(raw)
            if "\\" in raw or pure.is_absolute() or re.match(r"^[A-Za-z]:", raw):
                problems.append(f"{where}: must be a relative POSIX path inside the entry folder")
                continue
            if ".." in pure.parts:
                problems.append(f"{where}: '..' would leave the entry folder; paths must stay inside it")
                continue
            match = _WEIGHTS_NAME.match(pure.name)
            if not match:
                problems.append(f"{where}: weights files are named seed-<n>.safetensors (safetensors only)")
                continue
            if int(match.group(1)) != seed:
                problems.append(f"{where}: the file for seed {seed} must be named seed-{seed}.safetensors")
                continue
            resolved = (sub.folder / raw).resolve()
            if not resolved.is_relative_to(root):
                problems.append(f"{where}: resolves to {resolved}, outside the entry folder (symlink?)")
                continue
            if raw in seen:
                problems.append(f"{where}: the same file is also {seen[raw]}")
            seen[raw] = where
    return problems
