"""The plugin's pictures as PNG files (pure matplotlib, Agg canvas; no Scipion, no GUI, no torch).

* :func:`plot_training_curves` - loss and validation Dice per epoch of a model's training history (or of
  an ensemble's networks).
* :func:`plot_pr_curves` - precision-recall curves (per tomogram and overall) with a metrics table.
* :func:`plot_slab` - a z slab of a tomogram with the picks circled per class and a mask overlaid.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas, never through
``pyplot``, so they neither need a display nor change the backend of a running Scipion GUI. The
Scipion viewers (:mod:`.viewers`) draw the same figures into interactive windows with the
``draw_*`` functions.

Coordinates are 0-based voxels (x, y, z) of the tomogram (Scipion's ``BOTTOM_LEFT_CORNER``); slabs
are shown with y growing upwards (``origin="lower"``) so x, y read as in the coordinate files.
"""

from __future__ import annotations

import csv
import os
from typing import Mapping, Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import EllipseCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from deepict.io import read_volume

#: Colours of classes 1, 2, ... (matplotlib's tab10 without the grey).
CLASS_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
                 "#17becf"]
DEFAULT_THICKNESS = 5
DEFAULT_RADIUS = 8.0
#: Above this many groups (classes, filaments) a slab has no legend: it would be taller than the image and its
#: colours repeat (:data:`CLASS_COLOURS`); the title gives their number instead.
MAX_LEGEND_ENTRIES = 12
#: Room (inches) right of a slab for its legend, outside the image so that it covers no pick.
LEGEND_WIDTH_INCHES = 2.4
#: Marker area (points²) of a filament's point: its points lie a few voxels apart along the centre line, where
#: circles of the box's size merged into one band per filament.
FILAMENT_POINT_AREA = 12


def class_colour(index: int) -> str:
    return CLASS_COLOURS[index % len(CLASS_COLOURS)]


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, out_png) -> str:
    out_png = os.fspath(out_png)
    folder = os.path.dirname(os.path.abspath(out_png))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(out_png)}.tmp.png")
    figure.savefig(tmp, format="png")
    os.replace(tmp, out_png)
    return out_png


# --------------------------------------------------------------------------------------------
# Training curves
# --------------------------------------------------------------------------------------------

def _history_columns(history) -> dict:
    """{epoch, loss, val_dice} arrays from a list of epoch dicts (or a dict of lists)."""
    if isinstance(history, Mapping):
        rows = [dict(zip(history, values)) for values in zip(*history.values())]
    else:
        rows = list(history or [])
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]

    def column(name):
        return np.array([np.nan if r.get(name) is None else float(r[name]) for r in rows], dtype=float)

    return {"epoch": np.array(epochs, dtype=float), "loss": column("loss"), "val_dice": column("val_dice")}


def _training_runs(history) -> dict:
    """{label: columns} of one history (label None) or of {label: history} (several networks)."""
    if isinstance(history, Mapping) and history and "epoch" not in history:
        return {label: _history_columns(run) for label, run in history.items()}
    return {None: _history_columns(history)}


def draw_training_curves(figure: Figure, history, title: Optional[str] = None, kept: Optional[tuple] = None,
                         no_history: str = "no training history") -> None:
    """Loss and validation Dice per epoch of one training's ``history``, or of each of {label: history} (an
    ensemble's networks: one line each, labelled). ``kept``: (what, validation Dice) of the model's weights when
    they are no epoch as trained (a weight average), drawn as a level beside the best epoch's. ``no_history``:
    what the plots say without one (e.g. an imported network)."""
    runs = _training_runs(history)
    loss_ax, dice_ax = figure.subplots(1, 2)
    single = len(runs) == 1
    drawn = {label: data for label, data in runs.items() if len(data["epoch"])}
    for index, (label, data) in enumerate(drawn.items()):
        loss_ax.plot(data["epoch"], data["loss"], "o-", color=class_colour(0 if single else index), markersize=3,
                     label=label)
        if np.isfinite(data["val_dice"]).any():
            dice_ax.plot(data["epoch"], data["val_dice"], "o-", color=class_colour(2 if single else index),
                         markersize=3, label=label)
            if single:
                best = int(np.nanargmax(data["val_dice"]))
                dice_ax.axvline(data["epoch"][best], color="grey", linestyle=":")
                early = best < len(data["epoch"]) / 2  # the label on the side with room: inside the axes
                dice_ax.annotate(f"best {data['val_dice'][best]:.3f} (epoch {data['epoch'][best]:g})",
                                 (data["epoch"][best], data["val_dice"][best]), textcoords="offset points",
                                 xytext=(4 if early else -4, -14), ha="left" if early else "right", fontsize=8)
                if kept is not None and kept[1] is not None:
                    dice_ax.axhline(kept[1], color=class_colour(1), linestyle="--", linewidth=1,
                                    label=f"model: {kept[1]:.3f} ({kept[0]})")
                    dice_ax.legend(fontsize=8, loc="upper left")
    if not drawn:
        for ax in (loss_ax, dice_ax):
            ax.text(0.5, 0.5, no_history, ha="center", va="center", transform=ax.transAxes, wrap=True)
    elif not dice_ax.lines:
        dice_ax.text(0.5, 0.5, "no validation data", ha="center", va="center", transform=dice_ax.transAxes)
    if not single and drawn:
        for ax in (loss_ax, dice_ax):
            if ax.lines:
                ax.legend(fontsize=8)
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="Loss")
    dice_ax.set(xlabel="epoch", ylabel="validation Dice", title="Validation Dice", ylim=(0, 1.02))
    for ax in (loss_ax, dice_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        figure.suptitle(title)
    figure.tight_layout()


def plot_training_curves(history, out_png, title: Optional[str] = None, kept: Optional[tuple] = None,
                         no_history: str = "no training history") -> str:
    """PNG of loss and validation Dice per epoch.

    ``history`` is a model's training history: a list of ``{epoch, loss, val_dice, seconds}`` (as
    ``deepict model-info --json`` prints; ``val_dice`` may be None) or a dict of equal-length lists;
    or {label: history} of several trainings (an ensemble's networks), drawn one line each. ``kept`` and
    ``no_history``: see :func:`draw_training_curves`.
    """
    figure = _new_figure(9, 3.6)
    draw_training_curves(figure, history, title, kept, no_history)
    return _save(figure, out_png)


# --------------------------------------------------------------------------------------------
# Precision-recall curves and metrics table
# --------------------------------------------------------------------------------------------

def read_curve_csv(path) -> dict:
    """A ``deepict evaluate --curve`` CSV as {column: array}."""
    columns: dict = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            for key, value in row.items():
                columns.setdefault(key, []).append(float(value) if value not in ("", None) else np.nan)
    return {k: np.array(v, dtype=float) for k, v in columns.items()}


def _as_curve(curve) -> dict:
    if isinstance(curve, (str, os.PathLike)):
        curve = read_curve_csv(curve)
    elif not isinstance(curve, Mapping):  # rows (dicts)
        rows = list(curve)
        curve = {k: [r[k] for r in rows] for k in (rows[0] if rows else {"recall": 0, "precision": 0})}
    return {k: np.asarray(v, dtype=float) for k, v in curve.items() if k in ("recall", "precision", "threshold")}


def draw_pr_curves(figure: Figure, curves: Mapping, table: Optional[Sequence] = None,
                   title: Optional[str] = None, marks: Sequence = ()) -> None:
    """``marks``: (recall, precision, label) points to annotate on the curves (e.g. the trade-off's thresholds)."""
    curves = {label: _as_curve(c) for label, c in (curves or {}).items()}
    if curves and table:
        curve_ax, table_ax = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    elif curves:
        curve_ax, table_ax = figure.subplots(1, 1), None
    else:
        curve_ax, table_ax = None, figure.subplots(1, 1)
    if curve_ax is not None:
        for index, (label, curve) in enumerate(curves.items()):
            recall, precision = curve.get("recall", np.zeros(0)), curve.get("precision", np.zeros(0))
            overall = label.lower() == "overall"
            if len(recall):  # start at recall 0 with the first precision, as the AUPRC does
                recall, precision = np.concatenate(([0.0], recall)), np.concatenate(([precision[0]], precision))
            curve_ax.plot(recall, precision, "-" if overall else "--", drawstyle="default",
                          color="black" if overall else class_colour(index), linewidth=2 if overall else 1.2,
                          marker="o" if len(recall) < 30 else None, markersize=3, label=label)
        for recall, precision, label in marks:
            curve_ax.plot([recall], [precision], "s", color="black", markersize=5)
            curve_ax.annotate(label, (recall, precision), textcoords="offset points", xytext=(-4, -11), ha="right",
                              fontsize=7)
        curve_ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02),
                     title="Precision-recall over the score")
        curve_ax.grid(alpha=0.3)
        curve_ax.legend(fontsize=8, loc="lower left")
    if table_ax is not None:
        table_ax.axis("off")
        header, *body = [list(map(_cell, row)) for row in table] if table else [["no results"]]
        if body:
            widget = table_ax.table(cellText=body, colLabels=header, loc="center", cellLoc="center")
            widget.auto_set_font_size(False)
            widget.set_fontsize(8)
            widget.auto_set_column_width(col=list(range(len(header))))
            widget.scale(1, 1.3)
            for (row, _), cell in widget.get_celld().items():
                if row == 0 or (body[row - 1] and str(body[row - 1][0]).lower() == "overall"):
                    cell.set_text_props(fontweight="bold")
        else:
            table_ax.text(0.5, 0.5, " ".join(header), ha="center", va="center")
    if title:
        figure.suptitle(title)
    figure.tight_layout()


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (float, np.floating)):
        return "-" if not np.isfinite(value) else f"{float(value):.3f}"
    return str(value)


def plot_pr_curves(curves: Mapping, out_png, table: Optional[Sequence] = None, title: Optional[str] = None,
                   marks: Sequence = ()) -> str:
    """PNG of precision-recall curves, with an optional metrics table beside them.

    ``curves``: {label: curve}, a curve being a ``deepict evaluate --curve`` CSV path, a dict with
    ``recall`` and ``precision`` arrays, or a list of row dicts. A label ``overall`` is drawn in
    black. ``table``: rows of cells, the first row being the header (e.g.
    ``[["tomogram", "precision", "recall", "F1", "AUPRC"], ["TS_01", 0.9, 0.8, 0.85, 0.88]]``).
    With no curves only the table is drawn (voxel evaluations).
    """
    width = 11 if curves and table else 6.5
    figure = _new_figure(width, 4.5)
    draw_pr_curves(figure, curves, table, title, marks)
    return _save(figure, out_png)


# --------------------------------------------------------------------------------------------
# Tomogram slab with picks and a mask
# --------------------------------------------------------------------------------------------

def _points(xyz) -> np.ndarray:
    points = np.asarray(xyz, dtype=float)
    return points.reshape(-1, 3) if points.size else np.zeros((0, 3))


def default_z(shape_zyx, picks_by_class: Mapping) -> int:
    """The median z of all picks, else the central slice."""
    points = [_points(p) for p in (picks_by_class or {}).values()]
    points = np.concatenate(points) if points else np.zeros((0, 3))
    z = float(np.median(points[:, 2])) if len(points) else (shape_zyx[0] - 1) / 2.0
    return int(np.clip(round(z), 0, shape_zyx[0] - 1))


def _slab_range(z: int, thickness: int, depth: int) -> tuple:
    half = max(int(thickness), 1) // 2
    return max(0, z - half), min(depth, z + half + 1)


def slab_image(data, z: int, thickness: int = DEFAULT_THICKNESS) -> np.ndarray:
    """Mean of the slices ``z - thickness//2 .. z + thickness//2`` (clipped to the volume), as float32."""
    z0, z1 = _slab_range(z, thickness, data.shape[0])
    return np.asarray(data[z0:z1], dtype=np.float32).mean(axis=0)


def mask_slab(mask, z: int, thickness: int = DEFAULT_THICKNESS) -> np.ndarray:
    """Maximum of a mask / probability map over the same slab."""
    z0, z1 = _slab_range(z, thickness, mask.shape[0])
    return np.asarray(mask[z0:z1], dtype=np.float32).max(axis=0)


def _contrast(image: np.ndarray) -> tuple:
    low, high = np.percentile(image, [1, 99]) if image.size else (0.0, 1.0)
    return (float(low), float(high)) if high > low else (float(low), float(low) + 1.0)


def circles_at(points: np.ndarray, z: float, radius: float, thickness: int = DEFAULT_THICKNESS) -> tuple:
    """(x, y, circle radius) of the picks whose sphere of ``radius`` meets the slab around ``z``."""
    points = _points(points)
    if not len(points):
        return np.zeros(0), np.zeros(0), np.zeros(0)
    half = max(int(thickness), 1) // 2
    dz = np.maximum(np.abs(points[:, 2] - z) - half, 0.0)
    keep = dz <= radius
    sizes = np.sqrt(np.maximum(radius ** 2 - dz[keep] ** 2, 0.0))
    return points[keep, 0], points[keep, 1], np.maximum(sizes, max(radius * 0.25, 1.0))


def shows_legend(picks_by_class: Mapping) -> bool:
    """Whether a slab of these groups of picks has a legend (beside the image): at most :data:`MAX_LEGEND_ENTRIES`."""
    return 0 < len(picks_by_class or {}) <= MAX_LEGEND_ENTRIES


def draw_slab(ax, data, picks_by_class: Mapping, z: int, mask=None, thickness: int = DEFAULT_THICKNESS,
              radius: float = DEFAULT_RADIUS, title: Optional[str] = None, legend: bool = True,
              filaments: bool = False) -> None:
    """Draw slab ``z`` of ``data`` (z, y, x) with the picks circled and ``mask`` overlaid into ``ax``.

    ``filaments``: the groups are traced filaments, whose points are drawn as small dots (those within ``radius``
    of the slab). The legend stands right of the image (leave room for it: :data:`LEGEND_WIDTH_INCHES`), and only
    when :func:`shows_legend`.
    """
    ax.clear()
    image = slab_image(data, z, thickness)
    low, high = _contrast(image)
    ax.imshow(image, cmap="gray", origin="lower", vmin=low, vmax=high, interpolation="nearest")
    if mask is not None:
        overlay = mask_slab(mask, z, thickness)
        top = float(overlay.max()) if overlay.size else 0.0
        ax.imshow(np.ma.masked_less_equal(overlay, 0), cmap="autumn", origin="lower", alpha=0.35,
                  vmin=0, vmax=max(top, 1e-6) if top > 1 else 1.0, interpolation="nearest")
    handles = []
    for index, (label, points) in enumerate((picks_by_class or {}).items()):
        x, y, sizes = circles_at(points, z, radius, thickness)
        colour = class_colour(index)
        if filaments:
            ax.scatter(x, y, s=FILAMENT_POINT_AREA, color=colour, edgecolors="none")
        elif len(x):
            circles = EllipseCollection(2 * sizes, 2 * sizes, np.zeros(len(x)), units="xy",
                                        offsets=np.column_stack([x, y]), offset_transform=ax.transData,
                                        facecolors="none", edgecolors=colour, linewidths=1.5)
            ax.add_collection(circles)
        handles.append(ax.plot([], [], "o", markerfacecolor=colour if filaments else "none", markeredgecolor=colour,
                               label=f"{label} ({len(x)} here / {len(_points(points))})")[0])
    ax.set_xlim(-0.5, data.shape[2] - 0.5)
    ax.set_ylim(-0.5, data.shape[1] - 0.5)
    ax.set_xlabel("x (voxels)")
    ax.set_ylabel("y (voxels)")
    z0, z1 = _slab_range(z, thickness, data.shape[0])
    groups = "" if shows_legend(picks_by_class) or not handles else \
        f", {len(handles)} {'filaments' if filaments else 'classes'}"
    ax.set_title(f"{title + ': ' if title else ''}z = {z} (slab {z0}-{z1 - 1}){groups}", fontsize=10)
    if legend and shows_legend(picks_by_class):
        ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def load_slab_inputs(tomogram_path, mask_path=None):
    """Memory-mapped tomogram (and mask) data, (z, y, x); the mask must have the tomogram's shape."""
    data = read_volume(tomogram_path, check_finite=False).data
    mask = None
    if mask_path:
        mask = read_volume(mask_path, check_finite=False).data
        if mask.shape != data.shape:
            raise ValueError(f"The mask {mask_path} has shape {mask.shape} but the tomogram {tomogram_path} "
                             f"{data.shape}: give a mask of this tomogram.")
    return data, mask


def plot_slab(tomogram_path, picks_by_class: Mapping, out_png, z: Optional[int] = None, mask_path=None,
              thickness: int = DEFAULT_THICKNESS, radius: float = DEFAULT_RADIUS, title: Optional[str] = None,
              filaments: bool = False) -> str:
    """PNG of a tomogram slab around ``z`` with picks circled per class and a mask overlaid.

    ``picks_by_class``: {class label: (N, 3) x, y, z in 0-based voxels}. A pick is circled when its
    sphere of ``radius`` voxels meets the slab (the circle is the sphere's cross-section); the points of
    ``filaments`` (one group per filament) are small dots instead. ``z`` defaults to the median z of the picks
    (else the central slice); the slab is the mean of ``thickness`` slices. ``mask_path``: a mask or probability
    map of the same tomogram, shown in translucent colour (maximum over the slab). The legend stands right of the
    image.
    """
    data, mask = load_slab_inputs(tomogram_path, mask_path)
    z = default_z(data.shape, picks_by_class) if z is None else int(np.clip(int(z), 0, data.shape[0] - 1))
    height, width = data.shape[1:]
    scale = 7.0 / max(width, height)
    legend = LEGEND_WIDTH_INCHES if shows_legend(picks_by_class) else 0.0
    figure = _new_figure(max(width * scale, 3.0) + 0.8 + legend, max(height * scale, 3.0) + 0.6)
    ax = figure.subplots(1, 1)
    draw_slab(ax, data, picks_by_class, z, mask, thickness, radius, title, filaments=filaments)
    figure.tight_layout()
    return _save(figure, out_png)
