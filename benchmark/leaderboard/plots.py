"""Leaderboard plots as byte-deterministic PNGs (Agg canvas, default rc, no Software tag, fixed dpi).

* cross-architecture heatmap: evaluated entry (rows) x reference model (columns), metamer
  accuracy averaged over the release's datasets, one panel per metamer kind;
* invariance consistency (with its 95% CI) against clean accuracy, one point per entry.
"""
from __future__ import annotations

import io
import math

from benchmark.leaderboard.ranking import Board

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
    entries = [row.entry for row in board.rows]
    refs = sorted({c["reference_model"] for row in board.rows for c in row.cross_architecture})
    kinds = sorted({c["kind"] for row in board.rows for c in row.cross_architecture})
    matrices: dict[str, list[list[float | None]]] = {}
    for kind in kinds:
        matrix = []
        for row in board.rows:
            line = []
            for ref in refs:
                values = [c["metamer_acc"] for c in row.cross_architecture
                          if c["kind"] == kind and c["reference_model"] == ref and c["metamer_acc"] is not None]
                line.append(round(math.fsum(values) / len(values), 6) if values else None)
            matrix.append(line)
        matrices[kind] = matrix
    return {"entries": entries, "reference_models": refs, "kinds": kinds, "metamer_acc": matrices}


def scatter_data(board: Board) -> list[dict]:
    """One point per entry: clean accuracy, IC mean and CI, and whether it is ranked."""
    return [{"entry": r.entry, "clean_acc": r.scores["clean_acc"].mean, "ic": r.ic.mean, "ic_ci_low": r.ic.ci_low,
             "ic_ci_high": r.ic.ci_high, "ranked": r.ranked} for r in board.rows]


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


def render_heatmap(board: Board, title: str) -> bytes:
    """PNG bytes of the cross-architecture heatmap of ``board`` (see :func:`heatmap_data`)."""
    import numpy as np

    data = heatmap_data(board)
    entries, refs, kinds = data["entries"], data["reference_models"], data["kinds"]
    with _default_rc():
        n_panels = max(len(kinds), 1)
        fig = _figure(2.2 + 0.6 * max(len(refs), 1) * n_panels + 1.0, 1.8 + 0.3 * max(len(entries), 1))
        axes = fig.subplots(1, n_panels, squeeze=False)[0]
        if not kinds:
            axes[0].text(0.5, 0.5, "no cross-architecture scores", ha="center", va="center")
            axes[0].set_axis_off()
        image = None
        for ax, kind in zip(axes, kinds):
            matrix = np.array([[np.nan if v is None else v for v in line] for line in data["metamer_acc"][kind]],
                              dtype=float).reshape(len(entries), len(refs))
            image = ax.imshow(np.ma.masked_invalid(matrix), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
            ax.set_xticks(range(len(refs)), refs, rotation=45, ha="right", fontsize=8)
            ax.set_yticks(range(len(entries)), entries if ax is axes[0] else [""] * len(entries), fontsize=8)
            ax.set_title(f"{kind} metamers", fontsize=9)
            ax.set_xlabel("reference model", fontsize=8)
            for i in range(matrix.shape[0]):
                for j in range(matrix.shape[1]):
                    if not np.isnan(matrix[i, j]):
                        ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6,
                                color="white" if matrix[i, j] < 0.6 else "black")
        if image is not None:
            fig.colorbar(image, ax=list(axes), label="metamer accuracy", fraction=0.05, pad=0.02, shrink=0.9)
        fig.suptitle(title, fontsize=9)
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


def render_scatter(board: Board, title: str) -> bytes:
    """PNG bytes of IC (with 95% CI bars) against clean accuracy; unranked entries hollow.

    Points carry their board position (1 = top) and a key beside the axes names them: entries
    cluster within a point or two of each other, where name labels would overprint.
    """
    points = [dict(p, number=i + 1) for i, p in enumerate(scatter_data(board))]
    shown = [p for p in points if p["clean_acc"] is not None and p["ic"] is not None]
    with _default_rc():
        fig = _figure(8.4, 4.8)
        ax, key = fig.subplots(1, 2, width_ratios=[3.2, 1.0])
        for ranked, marker_face in ((True, "C0"), (False, "none")):
            chosen = [p for p in shown if p["ranked"] is ranked]
            if not chosen:
                continue
            xs = [p["clean_acc"] for p in chosen]
            ys = [p["ic"] for p in chosen]
            err = [[p["ic"] - p["ic_ci_low"] for p in chosen], [p["ic_ci_high"] - p["ic"] for p in chosen]]
            ax.errorbar(xs, ys, yerr=err, fmt="o", color="C0", mfc=marker_face, ecolor="0.6", capsize=2,
                        label="ranked" if ranked else "below accuracy floor")
        if shown:
            xs = [p["clean_acc"] for p in shown]
            lows = [p["ic_ci_low"] for p in shown] + [p["ic"] for p in shown]
            highs = [p["ic_ci_high"] for p in shown] + [p["ic"] for p in shown]
            x_pad = max(max(xs) - min(xs), 0.01) * 0.15
            y_pad = max(max(highs) - min(lows), 0.005) * 0.1
            ax.set_xlim(min(xs) - x_pad, max(xs) + 2.5 * x_pad)  # room on the right for the numbers
            ax.set_ylim(min(lows) - y_pad, max(highs) + y_pad)
            (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
            fractions = [(p["ic"] - y0) / (y1 - y0) for p in shown]
            label_ys = _spread_labels(fractions, min_gap=0.045)
            for p, frac, label_y in zip(shown, fractions, label_ys):
                point = ((p["clean_acc"] - x0) / (x1 - x0), frac)
                ax.annotate(str(p["number"]), point, xycoords="axes fraction",
                            xytext=(point[0] + 0.04, label_y), textcoords="axes fraction", fontsize=7,
                            va="center", arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5})
            ax.legend(fontsize=7, loc="best")
        ax.set_xlabel("clean accuracy (mean over frozen sets)")
        ax.set_ylabel("invariance consistency")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        key.set_axis_off()
        lines = [f"{p['number']:>2}  {p['entry']}" + ("" if p["ranked"] else " *") for p in points]
        if any(not p["ranked"] for p in points):
            lines += ["", "* below the accuracy floor"]
        key.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=7,
                 transform=key.transAxes)
        return _png(fig)
