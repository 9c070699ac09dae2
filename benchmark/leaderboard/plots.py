"""Leaderboard plots as byte-deterministic PNGs (Agg canvas, default rc, no Software tag, fixed dpi).

* cross-architecture heatmap: evaluated entry (rows) x reference model (columns), metamer
  accuracy averaged over the release's datasets, one panel per metamer kind; the colour scale
  spans the shown values (not 0..1), because entries differ by a few points;
* invariance consistency (with its 95% CI) against clean accuracy: all entries, and a zoom on
  the bulk (points outside Tukey's far fences, 3 IQR, are left to the overview) with names;
* breakdown: IC per dataset (one panel each) and metamer kind (one marker each) for every entry,
  with the chance (0.5) and reference-panel values as lines.

Chance and reference rows (``Board.anchors``) are drawn where present and labelled; they never
set an entry's position.
"""
from __future__ import annotations

import io
import math

from benchmark.leaderboard.ranking import PRIMARY, Board

DPI = 100
# Everything that could otherwise change the bytes: the matplotlib version tag, a user's
# matplotlibrc (style, fonts, hinting) and the backend. Agg writes no timestamp into PNGs.
_PNG_METADATA = {"Software": None}


def heatmap_data(board: Board) -> dict:
    """``{"entries", "reference_models", "kinds", "metamer_acc": {kind: [[value|None]]}}``.

    Rows follow the board's order; a cell is the mean of ``metamer_acc`` over datasets (None if the
    entry has no finite value for that reference model and kind). Values are rounded to 6 places
    so the JSON copy is stable.
    """
    # The reference panel's row (R on its own metamers) closes the matrix: the value an observer
    # with R's invariances reaches. Chance rows are left out: they would stretch the colour scale.
    cells_of = {row.entry: row.cross_architecture for row in board.rows}
    for anchor in board.anchors:
        if anchor.role == "reference":
            cells_of[anchor.label] = [{"dataset": s["dataset"], "kind": s["kind"],
                                       "reference_model": s["reference_model"],
                                       "metamer_acc": s["scores"].get("metamer_acc")} for s in anchor.sets]
    entries = list(cells_of)
    refs = sorted({c["reference_model"] for cells in cells_of.values() for c in cells})
    kinds = sorted({c["kind"] for cells in cells_of.values() for c in cells})
    matrices: dict[str, list[list[float | None]]] = {}
    for kind in kinds:
        matrix = []
        for entry in entries:
            line = []
            for ref in refs:
                values = [c["metamer_acc"] for c in cells_of[entry]
                          if c["kind"] == kind and c["reference_model"] == ref and c["metamer_acc"] is not None]
                line.append(round(math.fsum(values) / len(values), 6) if values else None)
            matrix.append(line)
        matrices[kind] = matrix
    return {"entries": entries, "reference_models": refs, "kinds": kinds, "metamer_acc": matrices}


def scatter_data(board: Board) -> list[dict]:
    """One point per entry (then per anchor): clean accuracy, IC mean and CI, whether it is ranked."""
    points = [{"entry": r.entry, "clean_acc": r.scores["clean_acc"].mean, "ic": r.ic.mean, "ic_ci_low": r.ic.ci_low,
               "ic_ci_high": r.ic.ci_high, "ranked": r.ranked, "anchor": None} for r in board.rows]
    ic = PRIMARY
    return points + [{"entry": a.label, "clean_acc": a.scores["clean_acc"].mean, "ic": a.scores[ic].mean,
                      "ic_ci_low": a.scores[ic].ci_low, "ic_ci_high": a.scores[ic].ci_high, "ranked": False,
                      "anchor": a.role} for a in board.anchors]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")  # no clipped labels
    FigureCanvasAgg(fig)  # attaches itself to the figure; no pyplot, no global backend switch
    return fig


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata=_PNG_METADATA)
    return buffer.getvalue()


def _default_rc():
    """A context with matplotlib's built-in defaults, so a user's style cannot change the bytes."""
    import matplotlib

    defaults = {k: v for k, v in matplotlib.rcParamsDefault.items() if not k.startswith("backend")}
    return matplotlib.rc_context(defaults)


def _span(values: list[float], floor_width: float = 0.02) -> tuple[float, float]:
    """The data's range, widened to at least ``floor_width`` (a flat colour scale would divide by 0)."""
    lo, hi = min(values), max(values)
    if hi - lo < floor_width:
        mid = (lo + hi) / 2
        lo, hi = mid - floor_width / 2, mid + floor_width / 2
    return lo, hi


def render_heatmap(board: Board, title: str) -> bytes:
    """PNG bytes of the cross-architecture heatmap of ``board`` (see :func:`heatmap_data`)."""
    import numpy as np

    data = heatmap_data(board)
    entries, refs, kinds = data["entries"], data["reference_models"], data["kinds"]
    values = [v for k in kinds for line in data["metamer_acc"][k] for v in line if v is not None]
    with _default_rc():
        n_panels = max(len(kinds), 1)
        fig = _figure(3.0 + 0.8 * max(len(refs), 1) * n_panels + 1.2, 1.6 + 0.32 * max(len(entries), 1))
        axes = fig.subplots(1, n_panels, squeeze=False)[0]
        if not kinds or not values:
            axes[0].text(0.5, 0.5, "no cross-architecture scores", ha="center", va="center")
            axes[0].set_axis_off()
            kinds = []
        vmin, vmax = _span(values) if values else (0.0, 1.0)
        image = None
        for ax, kind in zip(axes, kinds):
            matrix = np.array([[np.nan if v is None else v for v in line] for line in data["metamer_acc"][kind]],
                              dtype=float).reshape(len(entries), len(refs))
            image = ax.imshow(np.ma.masked_invalid(matrix), vmin=vmin, vmax=vmax, cmap="viridis", aspect="auto")
            ax.set_xticks(range(len(refs)), refs, rotation=30, ha="right", fontsize=9)
            ax.set_yticks(range(len(entries)), entries if ax is axes[0] else [""] * len(entries), fontsize=9)
            ax.set_title(f"{kind} metamers", fontsize=10)
            ax.set_xlabel("reference model R (whose metamers)", fontsize=9)
            for i in range(matrix.shape[0]):
                for j in range(matrix.shape[1]):
                    if not np.isnan(matrix[i, j]):
                        light = (matrix[i, j] - vmin) / (vmax - vmin) > 0.55  # viridis is light at the top
                        ax.text(j, i, f"{matrix[i, j]:.3f}", ha="center", va="center", fontsize=8,
                                color="black" if light else "white")
            if any(not e.startswith("reference") for e in entries) and entries[-1].startswith("reference"):
                ax.axhline(len(entries) - 1.5, color="white", lw=2)  # entries above, the panel below
        if image is not None:
            fig.colorbar(image, ax=list(axes), label=f"metamer accuracy (scale {vmin:.3f} to {vmax:.3f}; lower: "
                         "fewer of R's invariances shared)", fraction=0.05, pad=0.02, shrink=0.9)
        fig.suptitle(title, fontsize=10)
        return _png(fig)


def _spread_labels(ys: list[float], min_gap: float) -> list[float]:
    """Label heights (axes fraction) at least ``min_gap`` apart, each as close to its point as that allows.

    Greedy bottom-up pass then a top-down pass keeps the stack inside [0, 1]; deterministic.
    """
    order = sorted(range(len(ys)), key=lambda i: (ys[i], i))
    placed = [0.0] * len(ys)
    last = -math.inf
    for i in order:
        placed[i] = max(ys[i], last + min_gap)
        last = placed[i]
    ceiling = 1.0
    for i in reversed(order):
        placed[i] = min(placed[i], ceiling)
        ceiling = placed[i] - min_gap
    return placed


def _quartiles(values: list[float]) -> tuple[float, float]:
    import numpy as np

    q1, q3 = np.percentile(np.array(values, dtype=float), [25, 75])
    return float(q1), float(q3)


def split_outliers(points: list[dict]) -> tuple[list[dict], list[dict]]:
    """``(bulk, outliers)`` of entry points: an outlier lies beyond Tukey's far fence (3 IQR from the
    quartiles) in clean accuracy or IC. Anchors are always outliers (they frame, not crowd, the bulk)."""
    entries = [p for p in points if p["anchor"] is None]
    if len(entries) < 4:
        return entries, [p for p in points if p["anchor"] is not None]
    fences = {}
    for key in ("clean_acc", "ic"):
        q1, q3 = _quartiles([p[key] for p in entries])
        width = max(q3 - q1, 1e-3)
        fences[key] = (q1 - 3 * width, q3 + 3 * width)
    bulk = [p for p in entries if all(fences[k][0] <= p[k] <= fences[k][1] for k in fences)]
    return bulk, [p for p in points if p not in bulk]


def _draw_points(ax, points: list[dict], names: bool) -> None:
    styles = {(None, True): ("o", "C0", "ranked"), (None, False): ("o", "none", "below accuracy floor"),
              ("chance", False): ("s", "0.5", "chance"), ("reference", False): ("D", "C3", "reference panel")}
    for (anchor, ranked), (marker, face, label) in styles.items():
        chosen = [p for p in points if p["anchor"] == anchor and p["ranked"] is ranked]
        if not chosen:
            continue
        xs = [p["clean_acc"] for p in chosen]
        ys = [p["ic"] for p in chosen]
        err = [[0.0 if p["ic_ci_low"] is None else p["ic"] - p["ic_ci_low"] for p in chosen],
               [0.0 if p["ic_ci_high"] is None else p["ic_ci_high"] - p["ic"] for p in chosen]]
        edge = "C0" if anchor is None else face
        ax.errorbar(xs, ys, yerr=err, fmt=marker, color=edge, mfc=face, ecolor="0.6", capsize=2, ms=5, label=label)
    if names:
        return
    for p in points:
        if p["anchor"] is not None:
            ax.annotate(p["entry"], (p["clean_acc"], p["ic"]), xytext=(4, 4), textcoords="offset points", fontsize=7)


def render_scatter(board: Board, title: str) -> bytes:
    """PNG bytes of IC (with 95% CI bars) against clean accuracy; unranked entries hollow.

    Left: every entry and anchor (the overview, the zoomed region boxed). Right: the bulk of the
    entries, zoomed to their data, each labelled with its name (labels spread apart, joined to
    their point by a thin line) so that entries a point apart can still be told apart.
    """
    points = [p for p in scatter_data(board) if p["clean_acc"] is not None and p["ic"] is not None]
    bulk, _ = split_outliers(points)
    with _default_rc():
        fig = _figure(12.0, 6.0)
        overview, zoom = fig.subplots(1, 2, width_ratios=[1.0, 1.7])
        _draw_points(overview, points, names=False)
        overview.set_title("all entries, chance and reference", fontsize=9)
        overview.set_xlabel("clean accuracy (mean over frozen sets) →")
        overview.set_ylabel("invariance consistency (IC) →")
        overview.grid(alpha=0.3)
        if points:
            overview.legend(fontsize=7, loc="best")
        _draw_points(zoom, bulk, names=True)
        if bulk:
            xs = [p["clean_acc"] for p in bulk]
            lows = [p["ic_ci_low"] if p["ic_ci_low"] is not None else p["ic"] for p in bulk]
            highs = [p["ic_ci_high"] if p["ic_ci_high"] is not None else p["ic"] for p in bulk]
            x_pad = max(max(xs) - min(xs), 0.005) * 0.08
            y_pad = max(max(highs) - min(lows), 0.004) * 0.06
            x0, x1 = min(xs) - x_pad, max(xs) + x_pad
            y0, y1 = min(lows) - y_pad, max(highs) + y_pad
            overview.add_patch(_rectangle((x0, y0), x1 - x0, y1 - y0))
            zoom.set_xlim(x0, x1 + (x1 - x0) * 0.55)  # room on the right for the names
            zoom.set_ylim(y0, y1)
            fractions = [(p["ic"] - y0) / (y1 - y0) for p in bulk]
            label_ys = _spread_labels(fractions, min_gap=min(0.055, 0.95 / max(len(bulk), 1)))
            label_x = (x1 - x0 + 0.08 * (x1 - x0)) / ((x1 - x0) * 1.55)
            for p, frac, label_y in zip(bulk, fractions, label_ys):
                point = ((p["clean_acc"] - x0) / ((x1 - x0) * 1.55), frac)
                zoom.annotate(p["entry"] + ("" if p["ranked"] else " (below floor)"), point, xycoords="axes fraction",
                              xytext=(label_x, label_y), textcoords="axes fraction", fontsize=8, va="center",
                              arrowprops={"arrowstyle": "-", "color": "0.65", "lw": 0.5})
        zoom.set_title(f"zoom: {len(bulk)} of {sum(p['anchor'] is None for p in points)} entries "
                       "(outliers beyond 3 IQR left out)", fontsize=9)
        zoom.set_xlabel("clean accuracy (mean over frozen sets) →")
        zoom.grid(alpha=0.3)
        fig.suptitle(title + "; bars: 95% CI of IC", fontsize=10)
        return _png(fig)


def _rectangle(xy, width, height):
    from matplotlib.patches import Rectangle

    return Rectangle(xy, width, height, fill=False, ec="0.4", ls="--", lw=0.8)


def breakdown_data(board: Board) -> dict:
    """``{"datasets", "kinds", "entries", "ic": {dataset: {kind: [value|None per entry]}},
    "anchors": {label: {dataset: {kind: value|None}}}}`` from the per-set rows."""
    from benchmark.leaderboard.views import view_value

    items = [s for r in [*board.rows, *board.anchors] for s in r.sets]
    datasets = sorted({s["dataset"] for s in items})
    kinds = sorted({s["kind"] for s in items})

    def cell(sets, dataset, kind):
        return view_value([s for s in sets if s["dataset"] == dataset], "kind", kind, PRIMARY)

    return {"datasets": datasets, "kinds": kinds, "entries": [r.entry for r in board.rows],
            "ic": {d: {k: [cell(r.sets, d, k) for r in board.rows] for k in kinds} for d in datasets},
            "anchors": {a.label: {d: {k: cell(a.sets, d, k) for k in kinds} for d in datasets} for a in board.anchors
                        if a.role == "reference" or a.entry == "chance-majority"}}


def render_breakdown(board: Board, title: str) -> bytes:
    """PNG bytes: per dataset a panel, entries down the side (board order), IC per kind as markers;
    the reference panel (dashed, per kind) and chance (dotted) as vertical lines."""
    data = breakdown_data(board)
    datasets, kinds, entries = data["datasets"], data["kinds"], data["entries"]
    markers = ["o", "s", "^", "D", "v", "P"]
    with _default_rc():
        fig = _figure(2.2 + 2.9 * max(len(datasets), 1), 1.4 + 0.3 * max(len(entries), 1))
        axes = fig.subplots(1, max(len(datasets), 1), squeeze=False, sharey=True)[0]
        if not datasets or not entries:
            axes[0].text(0.5, 0.5, "no per-set scores", ha="center", va="center")
            axes[0].set_axis_off()
        ys = list(range(len(entries)))
        for ax, dataset in zip(axes, datasets):
            for k, kind in enumerate(kinds):
                shown = [(v, y) for v, y in zip(data["ic"][dataset][kind], ys) if v is not None]
                if shown:
                    ax.plot([v for v, _ in shown], [y for _, y in shown], markers[k % len(markers)], color=f"C{k}",
                            ms=5, label=kind, alpha=0.9)
                for label, by_dataset in data["anchors"].items():
                    value = by_dataset[dataset][kind]
                    if value is not None:
                        style = ":" if label.startswith("chance") else "--"
                        ax.axvline(value, color=f"C{k}" if style == "--" else "0.4", ls=style, lw=1)
            ax.set_title(dataset, fontsize=10)
            ax.set_xlabel("IC →", fontsize=9)
            ax.grid(axis="x", alpha=0.3)
            ax.tick_params(axis="x", labelsize=8)
        axes[0].set_yticks(ys, entries, fontsize=9)
        axes[0].invert_yaxis()  # board order, best at the top
        if datasets and entries:
            axes[-1].legend(fontsize=8, loc="lower right", title="metamer kind", title_fontsize=8)
        note = "dashed: reference panel per kind; dotted: chance (majority class)" if data["anchors"] else \
            "no chance/reference rows for this release"
        fig.suptitle(f"{title}\n{note}", fontsize=10)
        return _png(fig)
