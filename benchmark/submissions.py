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

(classes 1-4, and 3 but for the build, read the card alone: :mod:`benchmark.submission_card`)

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
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.errors import IntegrityError, UserError
from benchmark.files import sha256_file
from benchmark.release.opened import DatasetDims, Release
from benchmark.schemas import check_schema, raise_problems
from benchmark.submission_card import SUBMISSION_FILE, Submission, read_submission



# -- Dataset dimensions ---------------------------------------------------------------------------------------------
# DatasetDims is a release fact (benchmark.release.opened); a registered dataset's are read from its data.

@functools.lru_cache(maxsize=None)
def registry_dims(name: str) -> DatasetDims:
    """Dimensions of a registered dataset, read from the data itself (``load_dataset``)."""
    from benchmark.graphs import load_dataset

    dataset = load_dataset(name)
    return DatasetDims(dataset.num_features, dataset.num_classes, dataset.task)


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
    # dataset -> seed -> the red-flag checks' outcomes (benchmark.sanity), all passed
    red_flags: dict[str, dict[str, list[dict]]] = field(default_factory=dict)


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
    from benchmark.sanity import model_stages_fn, raise_red_flags, red_flags

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
                # The architecture is the zoo's; the weights can still be dead (zero gradients, constant stages).
                flags = red_flags(model_stages_fn(model.eval()), dims[name].task, dims[name].num_features)
                raise_red_flags(flags, source)
            except UserError as err:
                problems.append(str(err))
                continue
            checked.red_flags.setdefault(name, {})[str(seed)] = [f.to_dict() for f in flags]
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
