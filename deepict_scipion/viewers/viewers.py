"""Scipion viewers: training curves of a DeePiCt model, evaluation PR curves + F1 table, picks on slabs.

Each viewer has a method that writes its picture as PNG (``trainingCurvesPng``, ``evaluationPng``,
``slabPngs``), usable from scripts and tests without a display; in the GUI the PNG (or, for picks, an
interactive figure with a z slider) opens in a matplotlib window through pyworkflow's Plotter, which
uses the GUI's Tk backend. The drawing itself is in :mod:`.plots` (pure matplotlib).
"""

import json
import os
import shlex
import subprocess
import tempfile

import numpy as np
from pyworkflow.viewer import DESKTOP_TKINTER, View, Viewer
from tomo.objects import SetOfCoordinates3D

from deepict.nn.model_files import PUBLISHED_SOURCE_PREFIX

from .. import Plugin
from ..constants import FILAMENTS_ATTRIBUTE
from ..convert import coordinateGroups, isMarked
from ..objects import DeepictModel
from ..protocols.protocol_evaluate import ProtDeepictEvaluate
from ..protocols.protocol_pick import ProtDeepictPick
from . import plots


def _plotter(title, figsize):
    from pyworkflow.gui.plotter import Plotter
    plotter = Plotter(windowTitle=title, figsize=figsize)
    plotter.tightLayoutOn = False  # our figures lay themselves out
    return plotter


class PngView(View):
    """Shows a PNG file in a matplotlib window."""

    def __init__(self, pngPath, title=""):
        View.__init__(self)
        self.pngPath = pngPath
        self.title = title or os.path.basename(pngPath)

    def show(self):
        import matplotlib.image as mpimg
        image = mpimg.imread(self.pngPath)
        height, width = image.shape[:2]
        plotter = _plotter(self.title, (width / 100.0, height / 100.0))
        figure = plotter.getFigure()
        ax = figure.add_axes([0, 0, 1, 1])
        ax.imshow(image)
        ax.axis("off")
        plotter.show()


class SlabBrowserView(View):
    """A tomogram slab with picks and mask, browsable by z (and by tomogram) with matplotlib sliders."""

    def __init__(self, items, thickness=plots.DEFAULT_THICKNESS, radius=plots.DEFAULT_RADIUS, title="DeePiCt picks"):
        View.__init__(self)
        self.items = items
        self.thickness = thickness
        self.radius = radius
        self.title = title
        self._cache = {}

    def _load(self, index):
        if index not in self._cache:
            item = self.items[index]
            self._cache = {index: plots.load_slab_inputs(item["tomogram"], item.get("mask"))}
        return self._cache[index]

    def show(self):
        from matplotlib.widgets import Slider
        legend = any(plots.shows_legend(item["picks"]) for item in self.items)
        width = 8 + (plots.LEGEND_WIDTH_INCHES if legend else 0)
        plotter = _plotter(self.title, (width, 8.6))
        figure = plotter.getFigure()
        figure._deepictBrowser = self  # the sliders' callbacks are weak references: keep them alive
        ax = figure.add_axes([0.64 / width, 0.16, 7.04 / width, 0.78])  # the legend right of it, outside the image
        state = {"index": 0}
        data, _ = self._load(0)
        zSlider = Slider(figure.add_axes([0.15, 0.07, 0.7, 0.03]), "z", 0, data.shape[0] - 1,
                         valinit=plots.default_z(data.shape, self.items[0]["picks"]), valstep=1)
        self.sliders = [zSlider]

        def redraw(_=None):
            item = self.items[state["index"]]
            volume, mask = self._load(state["index"])
            plots.draw_slab(ax, volume, item["picks"], int(zSlider.val), mask, self.thickness, self.radius,
                            item.get("title"), filaments=item.get("filaments", False))
            figure.canvas.draw_idle()

        def changeTomogram(value):
            state["index"] = int(value)
            volume, _ = self._load(state["index"])
            zSlider.valmax = volume.shape[0] - 1
            zSlider.ax.set_xlim(0, zSlider.valmax)
            zSlider.set_val(plots.default_z(volume.shape, self.items[state["index"]]["picks"]))  # redraws

        zSlider.on_changed(redraw)
        if len(self.items) > 1:
            tomoSlider = Slider(figure.add_axes([0.15, 0.02, 0.7, 0.03]), "tomogram", 0, len(self.items) - 1,
                                valinit=0, valstep=1)
            tomoSlider.on_changed(changeTomogram)
            self.sliders.append(tomoSlider)
        redraw()
        plotter.show()


class DeepictViewerBase(Viewer):
    _environments = [DESKTOP_TKINTER]

    def _absPath(self, path):
        """Project-relative paths (Runs/...) as absolute paths."""
        if not path or os.path.isabs(path):
            return path
        project = self.getProject()
        return project.getPath(path) if project is not None and hasattr(project, "getPath") else os.path.abspath(path)

    def _pngFolder(self):
        project = self.getProject()
        folder = project.getTmpPath("deepict_viewers") if hasattr(project, "getTmpPath") else \
            self._getTmpPath("deepict_viewers")
        os.makedirs(folder, exist_ok=True)
        return folder

    def _safely(self, build):
        try:
            return build()
        except Exception as exc:  # shown to the user instead of a traceback in the GUI log
            return [self.errorMessage(str(exc), "DeePiCt viewer")]


class DeepictTrainingViewer(DeepictViewerBase):
    """Training curves (loss, validation Dice per epoch) of a DeePiCt model."""

    _label = "DeePiCt training curves"
    _name = _label  # what the right-click menu shows (else the class name)
    _targets = [DeepictModel]

    def modelInfo(self, path):
        """A model file's description, as ``deepict model-info --json`` gives it.

        Read from the ``model_info.json`` the train/import/ensemble protocols wrote beside the model, else
        from ``deepict model-info`` (a subprocess: the viewer never imports torch).
        """
        infoPath = os.path.join(os.path.dirname(path or ""), "model_info.json")
        if not os.path.exists(infoPath):
            if not path or not os.path.exists(path):
                raise FileNotFoundError(f"Model file not found: {path}")
            infoPath = os.path.join(tempfile.mkdtemp(prefix="deepict-model-info-"), "model_info.json")
            command = (f"{Plugin.getProgram(useGpu=False)} model-info --model {shlex.quote(path)} "
                       f"--json {shlex.quote(infoPath)}")
            subprocess.run(command, shell=True, env=Plugin.getEnviron(), check=True, stdout=subprocess.DEVNULL)
        with open(infoPath) as handle:
            return json.load(handle)

    def modelHistory(self, model):
        """The training history stored in the model file; for an ensemble, {network: its history} of the
        networks it combines (an ensemble was not trained itself), read from their model files."""
        info = self.modelInfo(self._absPath(model.getFileName()))
        members = info.get("members") or []
        if not members:
            return info.get("history") or []
        histories = {}
        for index, member in enumerate(members, start=1):
            seed = member.get("seed")
            label = f"network {index}" + (f" (seed {seed})" if seed is not None else "")
            try:
                histories[label] = self.modelInfo(member["file"]).get("history") or []
            except FileNotFoundError:  # moved or deleted since: drawn as a network without history
                histories[label] = []
        return histories

    def trainingCurvesPng(self, model, outPng):
        """The curves, with the model's own validation Dice where its weights are a weight average (the summary
        gives both), and for an imported network, why there is no history."""
        info = self.modelInfo(self._absPath(model.getFileName()))
        average = info.get("weight_average") or {}
        kept = (f"weight average of epochs {average['first_epoch']}-{average['last_epoch']}", average["val_dice"]) \
            if average.get("val_dice") is not None else None
        imported = (info.get("source") or "").startswith(PUBLISHED_SOURCE_PREFIX)
        return plots.plot_training_curves(self.modelHistory(model), outPng, title=str(model), kept=kept,
                                          no_history="no training history: a network imported from a DeePiCt "
                                                     "checkpoint" if imported else "no training history")

    def _visualize(self, obj, **kwargs):
        def build():
            png = self.trainingCurvesPng(obj, os.path.join(self._pngFolder(), f"training_{obj.getObjId()}.png"))
            return [PngView(png, "DeePiCt training curves")]
        return self._safely(build)


class DeepictEvaluationViewer(DeepictViewerBase):
    """Precision-recall curves and the F1 table of a DeePiCt evaluation."""

    _label = "DeePiCt evaluation"
    _name = _label  # what the right-click menu shows (else the class name)
    _targets = [ProtDeepictEvaluate]

    @staticmethod
    def evaluationTable(evaluation):
        overall = evaluation["overall"]
        if evaluation["mode"] == "particles":
            header = ["tomogram", "picks", "truth", "TP", "FP", "FN", "precision", "recall", "F1", "AUPRC"]
            keys = ["n_pred", "n_true", "tp", "fp", "fn", "precision", "recall", "f1", "auprc"]
        else:
            header = ["tomogram", "Dice", "precision", "recall", "AUPRC", "best F1"]
            keys = ["dice", "precision", "recall", "auprc", "max_f1"]
        rows = [header] + [[key] + [t.get(k) for k in keys] for key, t in evaluation["tomograms"].items()]
        overallKeys = [k if k != "dice" else "f1" for k in keys]
        if evaluation["mode"] != "particles":
            overallKeys = [k if k != "max_f1" else "max_f1_mean" for k in overallKeys]
        rows.append(["overall"] + [overall.get(k) for k in overallKeys])
        return rows

    @staticmethod
    def tradeOffMarks(evaluation):
        """(recall, precision, "score >= t") of the overall precision-recall trade-off, to mark on its curve."""
        points = evaluation["overall"].get("trade_off") or []
        return [(p["recall"], p["precision"], f"score ≥ {p['threshold']:.2f}") for p in points
                if p.get("threshold") is not None]

    def evaluationPng(self, protocol, outPng):
        evaluation = protocol.loadEvaluation()
        if evaluation is None:
            raise ValueError(f"{protocol.getRunName()} has no results yet (extra/evaluation.json is missing).")
        curves = {}
        if evaluation["mode"] == "particles":
            extra = os.path.dirname(protocol.evaluationPath())
            curves = {key: os.path.join(extra, name) for key, name in evaluation["curves"].items()
                      if os.path.exists(os.path.join(extra, name))}
        overall = evaluation["overall"]
        if evaluation["mode"] == "particles":
            title = (f"Particles matched within {evaluation['radius']:g} voxels: overall F1 {overall['f1']:.3f}, "
                     f"AUPRC {overall['auprc']:.3f}")
        else:
            title = "Voxel evaluation: " + ", ".join(f"{label} {overall[k]:.3f}" for k, label in
                                                     (("f1", "F1"), ("auprc", "mean AUPRC")) if k in overall)
        return plots.plot_pr_curves(curves, outPng, table=self.evaluationTable(evaluation), title=title,
                                    marks=self.tradeOffMarks(evaluation))

    def _visualize(self, obj, **kwargs):
        def build():
            png = self.evaluationPng(obj, os.path.join(self._pngFolder(), f"evaluation_{obj.getObjId()}.png"))
            return [PngView(png, "DeePiCt evaluation")]
        return self._safely(build)


class DeepictPicksViewer(DeepictViewerBase):
    """Picks circled per class on tomogram slabs, with the probability map (if kept) overlaid; traced filaments
    (the trace filaments protocol's output) as dots, one colour per filament."""

    _label = "DeePiCt picks on tomogram slabs"
    _name = _label  # what the right-click menu shows (else the class name)
    _targets = [ProtDeepictPick, SetOfCoordinates3D]

    def slabItems(self, obj):
        """[{key, title, tomogram, picks: {class label: (N, 3) xyz}, mask, filaments}] for every tomogram.

        Traced filaments (:data:`FILAMENTS_ATTRIBUTE`) are grouped by filament, labelled "filament N"."""
        protocol = obj if isinstance(obj, ProtDeepictPick) else (
            self.protocol if isinstance(self.protocol, ProtDeepictPick) else None)
        coordinates = getattr(obj, ProtDeepictPick.OUTPUT_PREFIX, None) if isinstance(obj, ProtDeepictPick) else obj
        if coordinates is None:
            raise ValueError("There are no picks to show yet.")
        names = {}
        if protocol is not None and protocol.inputModel.get() is not None:
            names = {i + 1: name for i, name in enumerate(protocol.inputModel.get().getClasses())}
        masks = {}
        if protocol is not None and getattr(protocol, "probabilityMaps", None) is not None:
            masks = {m.getTsId(): self._absPath(m.getFileName()) for m in protocol.probabilityMaps.iterItems()}
        filaments = isMarked(coordinates, FILAMENTS_ATTRIBUTE)  # the group id is the filament, not a class
        items = []
        for key, group in coordinateGroups(coordinates, keepEmpty=True).items():
            xyz = np.array(group.xyz, dtype=float).reshape(-1, 3)
            groups = np.array(group.groups, dtype=int)
            picks = {(f"filament {g}" if filaments else names.get(g, f"class {g}" if g else "picks")): xyz[groups == g]
                     for g in sorted(set(groups))}
            items.append({"key": key, "title": key, "tomogram": self._absPath(group.tomogram.getFileName()),
                          "picks": picks, "mask": masks.get(group.tomogram.getTsId()), "filaments": filaments})
        if not items:
            raise ValueError(f"{coordinates} has no tomograms to show.")
        return items

    @staticmethod
    def circleRadius(coordinates):
        """Circle radius in voxels: a third of the box (the pick protocol's box is 3 particle radii)."""
        box = coordinates.getBoxSize() if hasattr(coordinates, "getBoxSize") else None
        return box / 3.0 if box else plots.DEFAULT_RADIUS

    def _coordinates(self, obj):
        return getattr(obj, ProtDeepictPick.OUTPUT_PREFIX, None) if isinstance(obj, ProtDeepictPick) else obj

    def slabPngs(self, obj, outFolder, z=None, thickness=plots.DEFAULT_THICKNESS):
        """One PNG per tomogram (``<tsId>_slab.png``) of the slab around ``z`` (default: median pick z)."""
        radius = self.circleRadius(self._coordinates(obj))
        return [plots.plot_slab(item["tomogram"], item["picks"], os.path.join(outFolder, f"{item['key']}_slab.png"),
                                z=z, mask_path=item["mask"], thickness=thickness, radius=radius, title=item["title"],
                                filaments=item["filaments"])
                for item in self.slabItems(obj)]

    def _visualize(self, obj, **kwargs):
        def build():
            return [SlabBrowserView(self.slabItems(obj), radius=self.circleRadius(self._coordinates(obj)))]
        return self._safely(build)
