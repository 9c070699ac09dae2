"""The leaderboard: rank scored submissions per release and render Markdown, HTML, JSON and PNGs.

``render_all(results_dir, markdown_path, out_dir)`` returns every output as bytes (a pure function
of the results files and the chance/reference panels under ``<results>/panels/``, see
:mod:`benchmark.leaderboard.panel`); ``write_outputs`` writes them atomically and removes generated files that
are no longer produced; ``check_outputs`` lists what is stale on disk (``leaderboard --check``). ``refresh_panels``
computes the chance and reference rows of a release whose board lacks them (the only step that
reads a release; minutes, not seconds, so it runs only when a panel is missing or asked for).
"""
from __future__ import annotations

import os
from pathlib import Path

from benchmark.files import atomic_write_bytes
from benchmark.leaderboard.plots import render_breakdown, render_heatmap, render_scatter
from benchmark.leaderboard.ranking import (
    FLOOR_FRACTION, PRIMARY, SCORE_NAMES, Anchor, Board, Interval, ReleaseKey, Row, assign_ranks, build_boards,
    load_results, parse_result,
)
from benchmark.leaderboard.render import (
    COLUMNS, HTML_NAME, JSON_NAME, parse_html, plot_names, render_html, render_json,
    render_markdown, row_cells,
)

__all__ = [
    "Anchor", "COLUMNS", "FLOOR_FRACTION", "HTML_NAME", "JSON_NAME", "PRIMARY", "SCORE_NAMES", "Board", "Interval",
    "ReleaseKey", "Row", "assign_ranks", "build_boards", "check_outputs", "load_results", "parse_html",
    "parse_result", "plot_names", "refresh_panels", "render_all", "render_html", "render_json", "render_markdown",
    "row_cells", "write_outputs",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GENERATED_SUFFIXES = (".png", ".html", ".json")  # what the generator may delete inside its own folder


def render_all(results_dir: str | os.PathLike, markdown_path: str | os.PathLike, out_dir: str | os.PathLike,
               allow_missing: bool = False) -> dict[Path, bytes]:
    """Every leaderboard output as ``{path: bytes}``: the Markdown file, and under ``out_dir`` the
    HTML page, the JSON file and three PNGs per release. Deterministic: same results, same bytes.

    ``allow_missing`` renders an empty leaderboard when ``results_dir`` does not exist.
    """
    results_dir, markdown_path, out_dir = Path(results_dir), Path(markdown_path), Path(out_dir)
    rows = [] if allow_missing and not results_dir.exists() else load_results(results_dir)
    boards = build_boards(rows, results_dir)
    md_dir = markdown_path.resolve().parent
    prefix = Path(os.path.relpath(out_dir.resolve(), md_dir)).as_posix()
    # METRICS.md and submissions/ sit beside the output folder (the repository root).
    root = Path(os.path.relpath(out_dir.resolve().parent, md_dir)).as_posix()
    outputs = {markdown_path: render_markdown(boards, prefix, root).encode("utf-8"),
               out_dir / HTML_NAME: render_html(boards).encode("utf-8"),
               out_dir / JSON_NAME: render_json(boards).encode("utf-8")}
    for board in boards:
        names = plot_names(board)
        release = f"release {board.release.name} {board.release.version}"
        outputs[out_dir / names["heatmap"]] = render_heatmap(board, f"Metamer accuracy of each entry on R's metamers "
                                                                    f"(mean over datasets), {release}")
        outputs[out_dir / names["ic_vs_clean"]] = render_scatter(board, f"IC vs clean accuracy, {release}")
        outputs[out_dir / names["breakdown"]] = render_breakdown(board, f"IC per dataset and metamer kind, {release}")
    return outputs


def refresh_panels(results_dir: str | os.PathLike, release_dirs: list[str | os.PathLike] | None = None,
                   force: bool = False, log=print) -> list[Path]:
    """Write ``<results>/panels/<slug>.json`` for each release in ``release_dirs`` (default: the
    shipped release, when it is on disk) that some results file is scored on and that has no panel
    yet (every one with ``force``). Returns the paths written.

    A release no results file uses is skipped: a panel is context for a board, not a board.
    """
    from benchmark.errors import UserError
    from benchmark.files import canonical_json
    from benchmark.leaderboard.panel import compute_panel, panel_path
    from benchmark.release.locate import resolve_release
    from benchmark.release.opened import Release

    if release_dirs is None:
        try:
            shipped = resolve_release(None)
        except UserError:
            shipped = None  # no local release: boards without a panel say how to add one
        release_dirs = [shipped] if shipped is not None and (Path(shipped) / "MANIFEST.json").is_file() else []
    results_dir = Path(results_dir)
    used = {r.release for r in load_results(results_dir)} if results_dir.is_dir() else set()
    written = []
    for release_dir in release_dirs:
        release = Release.open(release_dir)
        key = ReleaseKey(**release.identity)
        path = panel_path(results_dir, key.slug)
        if key not in used or (path.is_file() and not force):
            continue
        log(f"computing chance and reference rows of {release_dir} (loads the release; minutes) -> {path}")
        data = canonical_json(compute_panel(release)).encode("utf-8")
        if not (path.is_file() and path.read_bytes() == data):
            atomic_write_bytes(path, data)
            written.append(path)
    return written


def _stale_panels(results_dir: Path) -> list[Path]:
    """Panel files of releases no board shows any more (their manifest changed or their entries left)."""
    from benchmark.leaderboard.panel import PANELS_DIR

    folder = results_dir / PANELS_DIR
    if not folder.is_dir():
        return []
    shown = {r.release.slug for r in load_results(results_dir)}
    return sorted(p for p in folder.glob("*.json") if p.stem not in shown)


def _stale_generated(outputs: dict[Path, bytes], out_dir: Path) -> list[Path]:
    """Files in ``out_dir`` that look generated but are no longer produced (e.g. a dropped release)."""
    if not out_dir.is_dir():
        return []
    wanted = {p.resolve() for p in outputs}
    return sorted(p for p in out_dir.iterdir()
                  if p.is_file() and p.suffix in _GENERATED_SUFFIXES and p.resolve() not in wanted)


def write_outputs(outputs: dict[Path, bytes], out_dir: str | os.PathLike,
                  results_dir: str | os.PathLike | None = None) -> list[Path]:
    """Write ``outputs`` atomically (unchanged files are left untouched) and delete generated files
    in ``out_dir`` (and, with ``results_dir``, panels of releases no board shows) that are no
    longer produced. Returns the paths written or deleted."""
    changed = []
    for path, data in sorted(outputs.items()):
        if not (path.is_file() and path.read_bytes() == data):
            atomic_write_bytes(path, data)
            changed.append(path)
    stale = _stale_generated(outputs, Path(out_dir))
    stale += _stale_panels(Path(results_dir)) if results_dir is not None else []
    for path in stale:
        path.unlink()
        changed.append(path)
    return changed


def check_outputs(outputs: dict[Path, bytes], out_dir: str | os.PathLike, compare_plots: bool = False,
                  results_dir: str | os.PathLike | None = None) -> list[str]:
    """Problems that make the files on disk differ from ``outputs``; empty when fresh.

    Markdown, HTML and JSON are compared byte for byte (the JSON holds every plotted number, so
    stale plot data shows there). PNG bytes depend on the matplotlib/FreeType build, so by
    default a plot only has to exist and be a PNG; ``compare_plots`` compares its bytes too.
    """
    problems = []
    for path, data in sorted(outputs.items()):
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.suffix == ".png" and not compare_plots:
            with open(path, "rb") as handle:
                if handle.read(8) != PNG_SIGNATURE:
                    problems.append(f"{path}: not a PNG file")
        elif path.read_bytes() != data:
            problems.append(f"{path}: stale (differs from what the results render to)")
    problems += [f"{p}: no longer generated (its release or entry is gone)" for p in _stale_generated(outputs, Path(out_dir))]
    if results_dir is not None:
        problems += [f"{p}: panel of a release no results file is scored on" for p in
                     _stale_panels(Path(results_dir))]
    return problems
