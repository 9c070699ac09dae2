"""Release builds and scoring on Ray (issue 15), on a local cluster of two one-CPU worker nodes.

The cluster is Ray's own test cluster (``ray.cluster_utils.Cluster``: a head with no CPU and two
worker nodes, processes of this test run) bound to the loopback interface. Ray is an optional
extra: where it is not installed these tests skip, except under CI, which installs it
(requirements/ci.lock) and where a missing Ray is a failure. The option checks at the end need no Ray.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.files import read_json
from benchmark.release.build import BuildIncomplete, ReleaseBuilder, ReleaseConfig
from test_release import TINY

# Before Ray is imported: every Ray process of these tests listens on 127.0.0.1 only, reports nothing.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

REPO = Path(__file__).resolve().parents[1]
HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY and os.environ.get("CI", "").lower() != "true",
                               reason='Ray is an optional extra (pip install -e ".[ray]")')


def _config() -> ReleaseConfig:
    config = ReleaseConfig(**TINY)
    config.check()
    return config


@pytest.fixture(scope="module")
def cluster():
    """Address of a running two-worker Ray cluster; this process is its driver."""
    if not HAVE_RAY:
        pytest.fail("Ray is not installed under CI (requirements/ci.lock installs it)")
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(2):
        c.add_node(num_cpus=1)
    ray.init(address=c.address, logging_level="ERROR")
    try:
        assert ray.cluster_resources()["CPU"] == 2 and c.address.startswith("127.0.0.1:")
        yield c.address
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def local_tiny(tmp_path_factory, cora, mutag):
    """The tiny release built in this process with one torch thread: what a one-CPU task runs with."""
    import torch

    root = tmp_path_factory.mktemp("local") / "v0"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ReleaseBuilder(_config(), root, progress=False).build()
    finally:
        torch.set_num_threads(threads)
    return root


def _release_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".build" not in p.relative_to(root).parts}


def _same_bytes(ours: Path, reference: Path) -> None:
    a, b = _release_files(ours), _release_files(reference)
    assert sorted(a) == sorted(b)
    assert [name for name in a if a[name] != b[name]] == []


@needs_ray
def test_a_ray_build_is_byte_identical_to_the_in_process_build(cluster, local_tiny, tmp_path):
    from benchmark.executors.ray_build import TaskRequest, build_with_ray
    from benchmark.release.verify import verify_release

    root = tmp_path / "v0"  # same folder name: the card quotes it
    lines: list[str] = []
    build_with_ray(ReleaseBuilder(_config(), root, progress=False), TaskRequest(cpus=1), address=cluster,
                   log=lines.append)
    _same_bytes(root, local_tiny)
    assert verify_release(root) is not None
    steps = read_json(root / ".build" / "state.json")["steps"]
    units = {k: v for k, v in steps.items() if k.startswith("set/")}
    assert len(units) == 4 and all(v["executor"] == "ray" and v["attempts"] == 1 for v in units.values())
    assert len({v["task_s"] > 0 and v["peak_rss_mb"] for v in units.values()}) >= 1
    assert sum(line.startswith("start checkpoint/") for line in lines) == 2  # one training per reference
    assert not list(root.rglob("*.tmp"))


@needs_ray
def test_resume_never_redoes_a_good_shard_and_redoes_a_damaged_one(cluster, local_tiny, tmp_path, capsys):
    import yaml

    from benchmark.executors.ray_build import TaskRequest, build_with_ray

    root = tmp_path / "v0"
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    # The command line, stopped after one set: the build in parts of --max-sets, on Ray.
    assert main(["build-release", "--config", str(tmp_path / "tiny.yaml"), "--out", str(root), "--executor", "ray",
                 "--address", cluster, "--max-sets", "1"]) == 0
    first = capsys.readouterr().out.splitlines()
    assert [line for line in first if line.startswith("start set/")] == ["start set/Cora/gcn/feature"]
    assert any(line.startswith("stopped as asked: 3 of 4 sets are not built yet") for line in first), first
    assert not (root / "MANIFEST.json").exists()
    with pytest.raises(BuildIncomplete, match="not built yet"):  # the library raises where the command stops
        build_with_ray(ReleaseBuilder(_config(), root, progress=False), TaskRequest(), address=cluster, only=0)
    second: list[str] = []
    build_with_ray(ReleaseBuilder(_config(), root, progress=False), TaskRequest(), address=cluster,
                   log=second.append)
    assert "start set/Cora/gcn/feature" not in second and "start checkpoint/Cora/gcn" not in second
    _same_bytes(root, local_tiny)
    # A shard that no longer hashes as recorded is not trusted: exactly that unit is built again.
    shard = root / "data" / "MUTAG" / "gin-structure.parquet"
    shard.write_bytes(shard.read_bytes()[:-7])
    third: list[str] = []
    build_with_ray(ReleaseBuilder(_config(), root, progress=False), TaskRequest(), address=cluster,
                   log=third.append)
    assert [line for line in third if line.startswith("start")] == ["start set/MUTAG/gin/structure"]
    _same_bytes(root, local_tiny)


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid == ancestor:
            return True
    return False


def _kill_when_running(title: str, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first process of this test run whose title is ``title`` (a Ray worker running that task)."""
    me = os.getpid()
    while not stop.is_set() and not killed:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if cmdline.strip() == title and _descends_from(int(proc.name), me):
                time.sleep(0.2)  # inside the unit's work, not at its first line
                try:
                    still = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace").strip()
                except OSError:
                    still = ""
                if still == title:  # the same task still running (a unit lasts seconds)
                    os.kill(int(proc.name), signal.SIGKILL)
                    killed.append(int(proc.name))
                    return
        time.sleep(0.02)


@needs_ray
def test_killing_a_worker_mid_unit_loses_only_that_unit(cluster, local_tiny, tmp_path):
    from benchmark.executors.ray_build import TaskRequest, build_with_ray

    root = tmp_path / "v0"
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_when_running, args=("ray::set/Cora/gcn/feature", killed, stop))
    killer.start()
    lines: list[str] = []
    try:
        build_with_ray(ReleaseBuilder(_config(), root, progress=False), TaskRequest(), address=cluster,
                       log=lines.append)
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1, "the Cora feature unit's worker was never seen running"
    assert any(line.startswith("lost set/Cora/gcn/feature (WorkerCrashedError)") for line in lines), lines
    steps = read_json(root / ".build" / "state.json")["steps"]
    attempts = {k: v["attempts"] for k, v in steps.items() if k.startswith("set/")}
    assert attempts == {"set/Cora/gcn/feature": 2, "set/Cora/gcn/structure": 1,
                        "set/MUTAG/gin/feature": 1, "set/MUTAG/gin/structure": 1}
    assert sum(line.startswith("start ") for line in lines) == 6  # 2 trainings, 4 units, nothing else redone
    _same_bytes(root, local_tiny)
    assert not list(root.rglob("*.tmp"))


@needs_ray
def test_an_error_in_a_unit_names_it_and_keeps_the_finished_units(cluster, tmp_path, monkeypatch):
    from benchmark.errors import UserError
    from benchmark.executors.ray_build import TaskRequest, build_with_ray

    bad = _config()
    bad.metamer_options = {"max_iterations": 8, "no_such_option": 1}  # fails inside every unit task
    with pytest.raises(UserError, match="no_such_option") as info:
        build_with_ray(ReleaseBuilder(bad, tmp_path / "v0", progress=False), TaskRequest(), address=cluster)
    assert any("while building set/" in note for note in getattr(info.value, "__notes__", []))
    assert (tmp_path / "v0" / "checkpoints" / "Cora" / "gcn" / "card.json").is_file()  # training was kept
    assert not (tmp_path / "v0" / "MANIFEST.json").exists()


ENTRIES = ("sgc-baseline", "mlp-baseline")


@needs_ray
@pytest.mark.slow
def test_two_entries_scored_on_ray_reproduce_their_results_files(cluster, tmp_path, capsys):
    from benchmark.reproduce import compare_results

    subs = tmp_path / "submissions"
    for entry in ENTRIES:
        shutil.copytree(REPO / "submissions" / entry, subs / entry)
    code = main(["evaluate", *(str(subs / e) for e in ENTRIES), "--executor", "ray", "--address", cluster,
                 "--release", str(REPO / "data_cards" / "v1")])
    assert code == 0
    out = capsys.readouterr().out
    for entry in ENTRIES:
        fresh = json.loads((subs / "results" / f"{entry}.json").read_text())
        recorded = read_json(REPO / "submissions" / "results" / f"{entry}.json")
        report = compare_results(fresh, recorded)
        assert report.ok, report.summary()
        assert f"results: {subs / 'results' / entry}.json" in out
    assert not list((subs / "results").glob(".*.tmp"))


# --- option checks: no Ray needed -----------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["build-release", "--address", "127.0.0.1:6379"], "only --executor ray uses"),
    (["build-release", "--cpus-per-unit", "2"], "only apply with --executor ray"),
    (["build-release", "--executor", "ray", "--address", "127.0.0.1:6379", "--workers", "2"], "--workers sizes"),
    (["evaluate", "submissions/sgc-baseline", "--address", "127.0.0.1:6379"], "only --executor ray uses"),
    (["evaluate", "submissions/sgc-baseline", "submissions/mlp-baseline", "--out", "x.json"], "--out"),
])
def test_executor_options_are_checked_before_anything_runs(argv, message, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_without_ray_the_executor_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    monkeypatch.chdir(REPO)
    assert main(["evaluate", "submissions/sgc-baseline", "--executor", "ray", "--out", str(tmp_path / "r.json")]) == 2
    assert "--out" in capsys.readouterr().err  # one entry on Ray still writes results/<entry>.json
    assert main(["evaluate", "submissions/sgc-baseline", "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert 'pip install -e ".[ray]"' in err and "leave out --executor" in err


def test_memory_requests_cover_the_peaks_measured_here():
    """docs/figures/bench_arxiv_unit.json and bench_ray.json: a request below a measured peak would let
    Ray pack more units on a node than fit in its memory."""
    from benchmark.executors.ray_build import unit_memory

    arxiv = {r["what"]: r for r in read_json(REPO / "docs" / "figures" / "bench_arxiv_unit.json")["rows"]}
    n, f, e = 169_343, 128, 2 * 1_166_243
    assert unit_memory("continuous", n, f, e, 5.0) >= arxiv["continuous"]["peak_rss_mb"] * 2**20
    assert unit_memory("structure", n, f, e, 1.0) >= arxiv["structure"]["peak_rss_mb"] * 2**20
    cora = read_json(REPO / "docs" / "figures" / "bench_ray.json")["v2_ray"]["peak_rss_mb"]
    assert unit_memory("feature", 2708, 1433, 10556, 5.0) >= max(cora) * 2**20


def test_nothing_imports_ray_until_an_executor_asks(tmp_path):
    """The default install has no Ray: every module (the executors' included) imports, and the
    README's commands' verbs parse, in a Python where ``import ray`` fails."""
    import subprocess
    import sys

    code = """
import importlib, pkgutil, sys
class NoRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("ray is not installed (test)")
sys.meta_path.insert(0, NoRay())
import benchmark
names = [m.name for m in pkgutil.walk_packages(benchmark.__path__, "benchmark.") if m.name != "benchmark.__main__"]
for name in names:
    importlib.import_module(name)
assert "benchmark.executors.ray_build" in names and "benchmark.executors.ray_evaluate" in names
from benchmark.cli import main
for verb in ("evaluate", "build-release"):
    assert main([verb, "--help"]) == 0
assert "ray" not in sys.modules
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
