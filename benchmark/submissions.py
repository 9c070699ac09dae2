"""Submission intake: ``submissions/<entry>/submission.json`` + one safetensors file per seed and dataset.

:func:`validate_submission` runs every check, class by class, and stops at the first class with
a problem, raising :class:`UserError` (or :class:`IntegrityError`) that lists every problem of
that class. The classes, in order:

1. ``card``: the folder and a parseable ``submission.json`` exist;
2. ``schema``: the card matches ``benchmark/schemas/submission.schema.json``;
3. ``contents``: registry architecture, known datasets covering the release, one weights file
   per declared seed, a config that builds;
4. ``paths``: every weights path is relative, named ``seed-<n>.safetensors`` and stays inside the
   entry folder (``..``, absolute paths and symlinks out are refused);
5. ``files``: every weights file exists;
6. ``hashes``: every file matches its declared SHA-256;
7. ``weights``: safetensors only (a pickle under any name is refused), no NaN/Inf, strict loading
   into the registered architecture built from the declared config (never from the file);
8. ``parameters``: the declared parameter count is the real one.

Within class 7, seeds that are copies of one another are refused, and, given the release
(``references``), so is any weights file equal to one of the release's reference checkpoints
(to :data:`REFERENCE_ATOL`), for releases whose manifest declares reference seeds disjoint from
submissions' (``generator.config.reference_seeds``). Release v1 declares none: its references are
the baselines' seed 0 by construction (a documented leak, fixed in v2), so v1 keeps accepting them.

The architecture always comes from the registry and the card's config.

:func:`write_submission` is the one writer of such folders (weights files first, the card last,
schema-checked): the baselines script, the benchmarks and the tests make folders the way a
submitter does, so intake is tested on what it will read.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from benchmark.errors import IntegrityError, UserError, unknown_choice
from benchmark.files import read_json, sha256_file
from benchmark.release.opened import DatasetDims, Release
from benchmark.schemas import check_schema, raise_problems

SUBMISSION_FILE = "submission.json"
MIN_SEEDS = 3
ENTRY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Folder names the project itself uses next to the entries: results files live in submissions/results/,
# rerun records (benchmark.rerun) in submissions/reruns/.
RESERVED_ENTRIES = frozenset({"results", "reruns"})
# A card is a few KiB; the cap refuses a hostile one before it is read.
MAX_CARD_BYTES = 1 << 20
_WEIGHTS_NAME = re.compile(r"^seed-(0|[1-9][0-9]*)\.safetensors$")
# Fields that each dataset fixes; the card may state them only if they agree.


# -- Dataset dimensions ---------------------------------------------------------------------------------------------
# DatasetDims is a release fact (benchmark.release.opened); a registered dataset's are read from its data.

@functools.lru_cache(maxsize=None)
def registry_dims(name: str) -> DatasetDims:
    """Dimensions of a registered dataset, read from the data itself (``load_dataset``)."""
    from benchmark.graphs import load_dataset

    dataset = load_dataset(name)
    return DatasetDims(dataset.num_features, dataset.num_classes, dataset.task)


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
        return read_program_submission(folder, entry, card, card_sha, datasets)
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


# -- Writing a submission ---------------------------------------------------------------------------------------------

def weights_name(dataset: str, seed: int) -> str:
    """Where a seed's weights live inside an entry folder: ``<dataset>/seed-<n>.safetensors``."""
    return f"{dataset}/seed-{int(seed)}.safetensors"


def write_submission(folder: str | os.PathLike, card: dict, weights: dict[str, dict[int, object]]) -> Path:
    """Write a registry-weights submission folder that :func:`validate_submission` reads back:
    every weights file first, ``submission.json`` last (a folder with a card is complete).

    Args:
        folder: ``submissions/<entry>`` (created if needed).
        card: the card without the weights blocks: ``name``, ``authors``, ``architecture``, ``seeds``,
            ``num_parameters``, ...; ``datasets.<name>`` may carry the other fields the schema allows
            (``config``, ``test_acc``).
        weights: ``{dataset: {seed: model or path}}``; a model's state dict is written
            (:func:`benchmark.checkpoints.state_dict_bytes`), a path to a safetensors file is copied
            (left in place when it already is the target file). Each lands at :func:`weights_name`
            and its SHA-256 goes into the card.

    Raises :class:`UserError` naming the field when a dataset's seeds are not the card's ``seeds``
    or the finished card does not match ``benchmark/schemas/submission.schema.json`` (no card is
    written then).

    One writer (OGB's ``DatasetSaver`` plays this part there): the baselines script, the benchmarks
    and the tests make folders the way a submitter does, so intake is tested on what it will read.
    """
    import shutil

    import torch

    from benchmark.checkpoints import state_dict_bytes
    from benchmark.files import atomic_write_bytes, atomic_write_json

    folder = Path(folder)
    seeds = sorted(int(s) for s in card.get("seeds", []))
    problems = []
    for dataset, by_seed in sorted(weights.items()):
        given = sorted(int(s) for s in by_seed)
        if given != seeds:
            problems.append(f"datasets.{dataset}.weights: seeds {given}, but the card's seeds are {seeds}")
    raise_problems(problems, f"{folder}: weights do not match the card's seeds")
    blocks = {name: dict(block) for name, block in card.get("datasets", {}).items()}
    for dataset, by_seed in sorted(weights.items()):
        entries = {}
        for seed, source in sorted(by_seed.items(), key=lambda kv: int(kv[0])):
            rel = weights_name(dataset, seed)
            target = folder / rel
            if isinstance(source, torch.nn.Module):
                atomic_write_bytes(target, state_dict_bytes(source))
            elif Path(source).resolve() != target.resolve():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
            entries[str(int(seed))] = {"path": rel, "sha256": sha256_file(target)}
        blocks[dataset] = {**blocks.get(dataset, {}), "weights": entries}
    full = {**card, "datasets": blocks}
    check_schema(full, "submission", "submission", f"{folder / SUBMISSION_FILE}: the card being written is invalid")
    atomic_write_json(folder / SUBMISSION_FILE, full)
    return folder


# -- Weights ------------------------------------------------------------------------------------------------------

def _copied_seed_problems(dataset: str, seeds: list[int], models: list) -> list[str]:
    """Seeds whose loaded weights are identical: copies pass as seeds with std 0 and a too-narrow CI."""
    from benchmark.checkpoints import state_dict_bytes
    from benchmark.files import sha256_bytes

    first: dict[str, int] = {}
    problems = []
    for seed, model in zip(seeds, models):
        digest = sha256_bytes(state_dict_bytes(model))
        if digest in first:
            problems.append(f"datasets.{dataset}.weights.{seed}: the same weights as seed {first[digest]}; each "
                            "seed must be an independent training run")
        first.setdefault(digest, seed)
    return problems


# A submitted model this close (max abs difference over every tensor) to a reference checkpoint of
# the release is that checkpoint: metamers were optimised against it, so it would score as a copy.
REFERENCE_ATOL = 1e-6


def reference_checkpoints(release: Release | str | os.PathLike) -> dict[str, dict[str, Path]]:
    """``{dataset: {"checkpoints/<dataset>/<arch>": weights path}}`` of the release's reference
    models, hash-checked, when its manifest declares reference seeds (``generator.config.reference_seeds``);
    ``{}`` for a release that declares none (v1, whose references are the baselines' seed 0)."""
    return Release.open(release).reference_weights()


def _reference_copy_problems(dataset: str, seeds: list[int], models: list, references: dict[str, Path]) -> list[str]:
    """Seeds whose weights equal a reference checkpoint of the release (to ``REFERENCE_ATOL``), naming it."""
    from benchmark.checkpoints import read_safetensors

    problems = []
    for name, path in sorted(references.items()):
        ref = read_safetensors(path)
        for seed, model in zip(seeds, models):
            state = model.state_dict()
            if state.keys() != ref.keys() or any(state[k].shape != ref[k].shape for k in state):
                continue  # another architecture or config: cannot be that checkpoint
            worst = max((float((state[k].double() - ref[k].double()).abs().max()) for k in state if state[k].numel()),
                        default=0.0)
            if worst <= REFERENCE_ATOL:
                problems.append(f"datasets.{dataset}.weights.{seed}: equal to the release's reference checkpoint "
                                f"{name} (max abs difference {worst:.3g} <= {REFERENCE_ATOL:g}); the metamers were "
                                "made against it, so submit independently trained weights")
    return problems


@dataclass
class CheckedSubmission:
    """A submission that passed every check, with its models loaded: ``models[dataset][i]`` is seed ``seeds[i]``."""

    submission: Submission
    models: dict[str, list] = field(default_factory=dict)
    num_parameters: dict[str, int] = field(default_factory=dict)
    weights_sha256: dict[str, dict[str, str]] = field(default_factory=dict)


def validate_submission(folder: str | os.PathLike, datasets: list[str] | None = None,
                        dims: dict[str, DatasetDims] | None = None, device: str = "cpu",
                        references: Release | str | os.PathLike | None = None) -> CheckedSubmission:
    """Run every check (see the module docstring) and return the loaded models.

    Args:
        folder: ``submissions/<entry>``.
        datasets: datasets the release scores (each must be covered, and only these are loaded);
            None loads every dataset in the card.
        dims: dataset dimensions (e.g. from the release); missing ones are read from the data.
        references: the release (opened, or its folder) whose reference checkpoints no weights file may equal
            (applied when its manifest declares ``reference_seeds``; see :func:`reference_checkpoints`).

    Raises:
        UserError / IntegrityError: on the first class of problem, listing every problem in it.
    """
    from benchmark.checkpoints import check_safetensors_header, load_state_strict, read_safetensors
    from benchmark.models import ModelConfig, build_model, count_parameters

    sub = read_submission(folder, datasets)
    wanted = sorted(datasets) if datasets is not None else sub.datasets
    dims = dict(dims or {})
    for name in wanted:
        if name not in dims:
            dims[name] = registry_dims(name)
    if getattr(sub, "format", None) is not None:  # exported programs: their own checks (benchmark/programs.py)
        from benchmark.programs import validate_programs

        return validate_programs(sub, wanted, dims, device)

    # Class 3 (contents, continued): the config fits the compute budget and builds, for every dataset.
    from benchmark.budget import budget_problem

    problems, configs = [], {}
    for name in wanted:
        found = sub.config_problems(name, dims[name])
        if not found and (over := budget_problem(sub.config_dict(name, dims[name]))):
            found = [f"config for {name}: {over}"]
        if not found:
            try:
                configs[name] = ModelConfig.from_dict(sub.config_dict(name, dims[name]))
                build_model(configs[name])
            except UserError as err:
                found = [f"config for {name}: {err}"]
        problems += [f"{sub.folder / SUBMISSION_FILE}: {p}" for p in found]
    raise_problems(problems, f"{sub.folder}: the declared architecture cannot be built")

    files = [(name, seed, sub.weights_path(name, seed)) for name in wanted for seed in sub.seeds]
    raise_problems([f"datasets.{n}.weights.{s}: file not found: {p}" for n, s, p in files if not p.is_file()],
                   f"{sub.folder}: missing weights files")
    mismatched = []
    hashes: dict[str, dict[str, str]] = {}
    for name, seed, path in files:
        actual = sha256_file(path)
        declared = sub.weights_entry(name, seed)["sha256"]
        hashes.setdefault(name, {})[str(seed)] = actual
        if actual != declared:
            mismatched.append(f"datasets.{name}.weights.{seed} ({path.name}): SHA-256 is {actual}, "
                              f"the card says {declared}; the file was changed or replaced")
    raise_problems(mismatched, f"{sub.folder}: weights do not match their SHA-256", IntegrityError)

    checked = CheckedSubmission(sub, weights_sha256=hashes)
    refs = reference_checkpoints(references) if references is not None else {}
    problems = []
    for name in wanted:
        models = []
        for seed in sub.seeds:
            path = sub.weights_path(name, seed)
            model = build_model(configs[name])
            source = f"datasets.{name}.weights.{seed} ({path.name})"
            try:
                # Names, shapes and dtypes from the header first, so nothing unexpected is read into memory;
                # then read_safetensors refuses pickles and NaN/Inf, and the strict load checks after casting.
                check_safetensors_header(path, {k: tuple(v.shape) for k, v in model.state_dict().items()}, source)
                load_state_strict(model, read_safetensors(path), source)
            except UserError as err:
                problems.append(str(err))
                continue
            models.append(model.eval().to(device))
        problems += _copied_seed_problems(name, sub.seeds, models) if len(models) == len(sub.seeds) else []
        if len(models) == len(sub.seeds) and refs.get(name):
            problems += _reference_copy_problems(name, sub.seeds, models, refs[name])
        checked.models[name] = models
        checked.num_parameters[name] = count_parameters(build_model(configs[name]))
    raise_problems(problems, f"{sub.folder}: weights refused", IntegrityError)

    largest = max(checked.num_parameters.values())
    # With every dataset of the card loaded the count must be exact; with a subset, at least as large.
    complete = set(wanted) == set(sub.datasets)
    declared = sub.card["num_parameters"]
    if declared != largest if complete else declared < largest:
        counts = ", ".join(f"{n}: {c}" for n, c in sorted(checked.num_parameters.items()))
        raise UserError(f"{sub.folder / SUBMISSION_FILE}: num_parameters is {sub.card['num_parameters']} but the "
                        f"declared architecture has {largest} (the largest over datasets; {counts})")
    return checked
