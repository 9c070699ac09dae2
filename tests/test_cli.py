"""The command line's conventions: help, verb list, exit codes, option help, ``python -m benchmark``,
and the one rule that finds a release from any working directory."""
from __future__ import annotations

import argparse
import ast
import fnmatch
import importlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import benchmark
from benchmark.cli import COMMAND_MODULES, build_parser, main
from benchmark.errors import UserError
from benchmark.release.locate import resolve_release

REPO = Path(__file__).resolve().parents[1]
PACKAGE = Path(benchmark.__file__).resolve().parent
SHIPPED = REPO / "data_cards" / "v1"
MODULES = [importlib.import_module(f"benchmark.commands.{name}") for name in COMMAND_MODULES]
VERBS = [m.NAME for m in MODULES]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


# ------------------------------------------------------------------------------------------ help and verbs

@pytest.mark.parametrize("argv", [["--help"], *[[verb, "--help"] for verb in VERBS]], ids=lambda a: " ".join(a))
def test_help_works_for_the_top_level_and_every_verb(argv, capsys):
    # evaluate's "95% bootstrap" once crashed --help inside argparse's %-formatting.
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: metamer-bench{'' if len(argv) == 1 else ' ' + argv[0]}")
    assert "exit status: 0 success; 1 a run or check failed" in out


def test_no_verb_lists_every_verb_on_one_line_and_exits_2(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    for module in MODULES:
        (line,) = [ln for ln in lines if ln.startswith(f"  {module.NAME} ")]
        assert line.strip().endswith(module.SUMMARY) and len(line) <= 80, line
    assert "usage: metamer-bench" in err and "exit status" in err


def test_every_option_of_every_verb_has_help_text():
    parser = build_parser()
    lacking = []
    for name, sub in {"": parser, **_subparsers(parser)}.items():
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                lacking.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not lacking, f"options without help text: {lacking}"


# ---------------------------------------------------------------------------------------------- exit codes

@pytest.mark.parametrize("argv, message", [
    (["list", "planets"], "invalid choice: 'planets'"),
    (["train", "--dataset", "Cora", "--model", "gcn", "--epochs", "0"], "--epochs: must be >= 1, got 0"),
    (["train", "--dataset", "Cora", "--model", "gcn", "--config", ""], "--config is not valid JSON"),
    (["generate", "--dataset", "Cora", "--model", "gcn", "--kind", "feature", "--max-iterations", "0"],
     "--max-iterations: must be >= 1, got 0"),
    (["generate", "--dataset", "Cora", "--model", "gcn", "--kind", "feature", "--options", ""],
     "--options is not valid JSON"),
    (["evaluate", "no/such/entry"], "submission folder no/such/entry does not exist"),
    (["validate", "no/such/entry"], "submission folder no/such/entry does not exist"),
    (["verify", "no/such/release"], "release folder no/such/release does not exist"),
    (["verify", "v99"], "release v99 not found; looked in data_cards/v99"),
    (["download", "latest", "--from", "."], "'latest' is not a release name"),
    (["download", "v1", "--from", "no/such/folder/x"], "source no/such/folder/x is neither"),
    (["download", "v1", "--from", ".", "--retries", "-1"], "--retries must be >= 0"),
    (["build-release", "--config", "no/such.yaml"], "release config not found: no/such.yaml"),
    (["leaderboard", "--results", "no/such/folder", "--check"], "no/such/folder"),
    (["evaluate", "x", "--bogus"], "unrecognized arguments: --bogus"),
    (["evaluate"], "the following arguments are required: entry"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_usage_and_input_errors_exit_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths above name nothing, whatever the checkout holds
    monkeypatch.setenv("METAMER_BENCH_CACHE", str(tmp_path / "cache"))
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert captured.out == ""


def test_train_epochs_zero_is_refused_not_replaced_by_the_default(capsys):
    # The old `if args.epochs` read 0 as "not given" and trained the registry's 500 epochs.
    assert main(["train", "--dataset", "Cora", "--model", "gcn", "--epochs", "0"]) == 2
    assert "must be >= 1, got 0" in capsys.readouterr().err


def test_list_json_is_one_document(capsys):
    from benchmark.graphs import REGISTRY
    from benchmark.models import MODEL_REGISTRY

    assert main(["list", "datasets", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in doc["datasets"]] == list(REGISTRY)
    assert {"name", "task", "split", "citation", "license"} == set(doc["datasets"][0])
    assert main(["list", "models", "--json"]) == 0
    assert [m["name"] for m in json.loads(capsys.readouterr().out)["models"]] == list(MODEL_REGISTRY)


# --------------------------------------------------------------------------------- finding a release

def _fake_release(folder: Path) -> Path:
    """Enough for the resolution rule, which only looks for MANIFEST.json."""
    folder.mkdir(parents=True)
    (folder / "MANIFEST.json").write_text("{}")
    return folder


def test_a_release_name_is_looked_up_in_the_working_directory_then_the_cache(tmp_path, monkeypatch):
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("METAMER_BENCH_CACHE", str(cache))
    with pytest.raises(UserError) as err:
        resolve_release("v3")
    message = str(err.value)
    assert "release v3 not found" in message and "data_cards/v3" in message
    assert str(cache / "releases" / "v3") in message and "metamer-bench download v3" in message

    half = cache / "releases" / "v3"
    half.mkdir(parents=True)  # an interrupted download: no manifest yet
    with pytest.raises(UserError, match=r"releases/v3 \(no MANIFEST.json\)"):
        resolve_release("v3")
    (half / "MANIFEST.json").write_text("{}")
    assert resolve_release("v3") == cache / "releases" / "v3"
    local = _fake_release(work / "data_cards" / "v3")
    assert resolve_release("v3").resolve() == local  # the working directory's copy comes first
    assert resolve_release(str(half)) == half  # an existing path is that path
    explicit = _fake_release(tmp_path / "anywhere" / "v3")
    assert resolve_release(explicit) == explicit
    with pytest.raises(UserError, match="release folder missing/v3 does not exist"):
        resolve_release("missing/v3")
    _fake_release(cache / "releases" / "v1")
    assert resolve_release(None) == cache / "releases" / "v1"  # no argument: the name v1, same rule


def test_no_code_path_finds_data_outside_the_package():
    """An installed package has no checkout around it: every path built from ``__file__`` must stay
    inside ``benchmark/`` (the old default release was ``Path(__file__).parents[2] / "data_cards"``)."""
    outside = []
    for source in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.expr) or not any(
                    isinstance(n, ast.Name) and n.id == "__file__" for n in ast.walk(node)):
                continue
            try:
                value = eval(compile(ast.Expression(node), str(source), "eval"),  # noqa: S307 - our own source
                             {"Path": Path, "os": os, "__file__": str(source)})
            except Exception:  # an expression that needs more than __file__: its parts are checked on their own
                continue
            if isinstance(value, (str, Path)) and not Path(value).resolve().is_relative_to(PACKAGE):
                outside.append(f"{source.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(node)} -> {value}")
    assert not outside, outside


def test_every_data_file_of_the_package_is_shipped_by_pip_install():
    """``pip install .`` ships .py files plus pyproject's package-data globs; a data file outside
    them works in a checkout and is missing after a plain install."""
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["benchmark"]
    data = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert data, "the package ships schemas and splits"
    assert not [f for f in data if not any(fnmatch.fnmatch(f, g) for g in globs)]


# ----------------------------------------------------------------------------- from outside the checkout

def _run(argv: list[str], cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "METAMER_BENCH_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "benchmark", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_python_m_benchmark_lists_the_verbs(tmp_path):
    done = _run([], tmp_path, tmp_path / "cache")
    assert done.returncode == 2 and done.stdout == ""
    assert all(f"  {verb} " in done.stderr for verb in VERBS)


@pytest.mark.skipif(not (SHIPPED / "MANIFEST.json").exists(), reason="release v1 not in this checkout")
def test_a_release_in_the_cache_is_found_from_any_working_directory(tmp_path):
    """Run from a folder that is not the checkout, with v1 only in a temporary cache (a symlink to
    the checkout's copy, which costs nothing to make)."""
    cache = tmp_path / "cache"
    (cache / "releases").mkdir(parents=True)
    (cache / "releases" / "v1").symlink_to(SHIPPED, target_is_directory=True)
    entry = REPO / "submissions" / "gcn-baseline"
    done = _run(["validate", str(entry), "--release", "v1", "--json"], tmp_path, cache)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] and doc["release"] == str(cache / "releases" / "v1")
    assert doc["datasets"] == sorted({s["dataset"] for s in json.loads((SHIPPED / "MANIFEST.json").read_text())["sets"]})
