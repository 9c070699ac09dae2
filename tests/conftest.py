"""Shared fixtures: real datasets from the data root; missing data fails under CI, never skips."""
from __future__ import annotations

import os

import pytest

from benchmark.errors import UserError


def load_or_skip(name: str):
    """Load a base dataset; a missing dataset is a failure under CI=true and a skip elsewhere."""
    from benchmark.graphs import load_dataset

    try:
        return load_dataset(name)
    except UserError as err:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"dataset {name} missing under CI: {err}")
        pytest.skip(f"dataset {name} not available: {err}")


@pytest.fixture(scope="session")
def cora():
    return load_or_skip("Cora")


@pytest.fixture(scope="session")
def citeseer():
    return load_or_skip("CiteSeer")


@pytest.fixture(scope="session")
def mutag():
    return load_or_skip("MUTAG")


@pytest.fixture(scope="session")
def trained_gcn(cora):
    """A GCN trained on Cora (seed 0) and its metrics; shared by every test that needs a reference model."""
    from benchmark.models import default_config
    from benchmark.training import train_model

    return train_model(cora, default_config("gcn", cora.num_features, cora.num_classes), seed=0)


@pytest.fixture()
def synthetic_results_rank(monkeypatch):
    """Let ``metamer-bench leaderboard`` render synthetic results files of synthetic releases.

    Rendering and staleness tests run the CLI on hand-made results with no submission folder and
    made-up release hashes, which provenance refuses by design (that refusal is tested, on copies of
    the real entries, in tests/test_integrity.py). Only the provenance step is switched off here.
    """
    import benchmark.leaderboard.provenance as provenance

    monkeypatch.setattr(provenance, "check_provenance", lambda results_dir, submissions_dir=None: None)


@pytest.fixture(scope="session")
def skipgcn_cora(cora):
    """Three seeds of the plain-PyG SkipGCN (tests/custom_models.py) trained on Cora: a model outside the zoo."""
    import torch

    from custom_models import train_skipgcn

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [train_skipgcn(cora, seed) for seed in (0, 1, 2)]
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    small Cora models and bootstrap matrices run several times faster on one BLAS thread than on two
    when other processes share the two cores (spinning OpenMP workers), and no slower alone."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cora_eval():
    """An evaluator of release v1's Cora sets (200 bootstrap replicates)."""
    from pathlib import Path

    from benchmark.evaluate import Evaluator

    return Evaluator(Path(__file__).resolve().parents[1] / "data_cards" / "v1", datasets=["Cora"], num_bootstrap=200)


@pytest.fixture(scope="session")
def built_v2(tmp_path_factory, cora, mutag):
    """The tiny release v2 of tests/tiny_release.py, built once per session (in two parts: one set, then
    the rest, which is how a long build resumes)."""
    from tiny_release import TINY_V2

    from benchmark.release.build import ReleaseBuilder, ReleaseConfig

    root = tmp_path_factory.mktemp("release") / "v9"
    config = ReleaseConfig(**TINY_V2)
    config.check()
    builder = ReleaseBuilder(config, root, progress=False)
    with pytest.raises(UserError, match="not built yet"):
        builder.build(only=1)  # a build in parts: one set, then stop
    ReleaseBuilder(config, root, progress=False).build()
    return root
