"""Filter the 3D coordinates of any picker by context masks of any tool (``deepict filter-context``)."""

import os

from pyworkflow import BETA
from pyworkflow.protocol import params
from pyworkflow.protocol.constants import STEPS_PARALLEL
from tomo.objects import SetOfCoordinates3D

from deepict import jobs
from deepict.conventions import CONTEXT_MODES
from deepict.io import read_coordinates, write_coordinates

from ..convert import COORDINATE_ID_COLUMN, coordinateGroups, tomogramKey
from .protocol_base import ProtDeepictBase, counted

KEPT, REJECTED = "outputCoordinates", "rejectedCoordinates"


class ProtDeepictFilterContext(ProtDeepictBase):
    """Keep the coordinates of any picker that lie in, near or at the border of a context mask.

    Coordinates from template matching (pytom-match-pick), crYOLO, manual picking or DeePiCt are
    split by masks from DeePiCt's 2D/3D segmentation, membrain-seg or a drawn mask, tomogram by
    tomogram (matched by tsId): intersection keeps those in the mask, contact those in or within a
    distance (Å) of it, colocalization those within the distance of its surface. Masks at another
    sampling rate are reconciled by the sampling rates. Nothing is lost: the rejected coordinates
    are a second output. Each coordinate keeps its tomogram, score, class and other attributes, and
    both sets keep the input's sampling rate and box size.
    """

    _label = "filter coordinates by context"
    _devStatus = BETA
    _possibleOutputs = {KEPT: SetOfCoordinates3D, REJECTED: SetOfCoordinates3D}
    _jobClass = jobs.FilterContextJob
    stepsExecutionMode = STEPS_PARALLEL

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputCoordinates", params.PointerParam, pointerClass="SetOfCoordinates3D", important=True,
                      label="Coordinates",
                      help="3D coordinates of any picker: template matching (pytom-match-pick), crYOLO, manual "
                           "picks, DeePiCt picks. Every tomogram with coordinates needs a mask.")
        form.addParam("inputMasks", params.PointerParam, pointerClass="SetOfTomoMasks", important=True,
                      label="Context masks",
                      help="Masks of the coordinates' tomograms, matched by tsId (else by tomogram file name): "
                           "DeePiCt's 2D/3D segmentations, membrain-seg membranes, a drawn mask. Voxels above 0 "
                           "are the context (every label of a label map). Any sampling rate: the coordinates are "
                           "scaled into the masks' voxels by the two sampling rates; a mask must cover its "
                           "tomogram.")
        form.addSection(label="Context")
        form.addParam("contextMode", params.EnumParam, choices=list(CONTEXT_MODES),
                      default=self._choiceIndex("mode"), label="Mode", help=self._help("mode"))
        form.addParam("distance", params.FloatParam, default=self._default("distance_angstrom"),
                      condition=f"contextMode != {CONTEXT_MODES.index('intersection')}", label="Distance (Å)",
                      help=self._help("distance_angstrom") + " A point's distance is 0 in a voxel of the mask (of "
                                                             "its surface), else the distance to the nearest voxel "
                                                             "centre.")
        self._defineComputeParams(form, gpu=False, threads=2)

    # ------------------------------------ steps ------------------------------------------------
    def _insertAllSteps(self):
        masks = self._maskFiles()
        convert = self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        steps = [self._insertFunctionStep(self.filterStep, key, masks[key], prerequisites=[convert], needsGPU=False)
                 for key in sorted(masks)]
        self._insertFunctionStep(self.createOutputStep, prerequisites=steps, needsGPU=False)

    def _tomogramsWithCoordinates(self):
        """The tomograms (clones) the coordinates belong to."""
        coordinates = self.inputCoordinates.get()
        tsIds = set(coordinates.getTSIds())
        return [t.clone() for t in coordinates.getPrecedents().iterItems() if t.getTsId() in tsIds]

    def _maskFiles(self):
        """{tomogram key: mask file or None} of the tomograms with coordinates (protocol_base.masksByKey)."""
        keys = {tomogramKey(t) for t in self._tomogramsWithCoordinates()}
        byKey = self.masksByKey(self.inputMasks.get(), self.inputCoordinates.get().getPrecedents())
        return {key: maskFile for key, maskFile in byKey.items() if key in keys}

    def _tablePath(self, key, kind):
        return os.path.abspath(self._getExtraPath(f"{key}_{kind}.csv"))

    def convertInputStep(self):
        """One coordinate table per tomogram: BOTTOM_LEFT voxels, score and each coordinate's Scipion id."""
        coordinates = self.inputCoordinates.get()
        for key, group in coordinateGroups(coordinates).items():
            write_coordinates(self._tablePath(key, "input"),
                              group.table(coordinates.getSamplingRate(), withClass=False, withIds=True))

    def filterJob(self, key, maskFile):
        """The ``deepict filter-context`` job of tomogram ``key``."""
        coordinates = self.inputCoordinates.get()
        tomogram = next(t for t in self._tomogramsWithCoordinates() if tomogramKey(t) == key)
        # The tomogram's extent checks the mask; its voxels are the coordinates' only at the same sampling.
        sameVoxels = self._sameSampling(tomogram.getSamplingRate(), coordinates.getSamplingRate())
        tomogramFile = tomogram.getFileName() if sameVoxels and os.path.exists(tomogram.getFileName()) else None
        return jobs.FilterContextJob(
            coords=self._tablePath(key, "input"), context=os.path.abspath(maskFile),
            mode=CONTEXT_MODES[self.contextMode.get()], distance_angstrom=self.distance.get(),
            out=self._tablePath(key, "kept"), rejected=self._tablePath(key, "rejected"),
            tomogram=os.path.abspath(tomogramFile) if tomogramFile else None,
            # Scipion's sampling rates are authoritative (MRC headers are often wrong)
            voxel_size=coordinates.getSamplingRate(), context_voxel_size=self.inputMasks.get().getSamplingRate())

    def filterStep(self, key, maskFile):
        self.runDeepict(self.filterJob(key, maskFile), f"filter-context_{key}")

    def _ids(self, kind):
        """The Scipion ids of the coordinates in the ``kind`` (kept, rejected) tables of every tomogram."""
        ids = set()
        for tomogram in self._tomogramsWithCoordinates():
            table = read_coordinates(self._tablePath(tomogramKey(tomogram), kind))
            ids.update(int(i) for i in table.column(COORDINATE_ID_COLUMN, default=0))
        return ids

    def createOutputStep(self):
        coordinates = self.inputCoordinates.get()
        keptIds, rejectedIds = self._ids("kept"), self._ids("rejected")
        outputs = {}
        for name, suffix in ((KEPT, "_kept"), (REJECTED, "_rejected")):
            outputs[name] = self._createSetOfCoordinates3D(coordinates.getPrecedents(), suffix=suffix)
            outputs[name].copyInfo(coordinates)
        for coord in coordinates.iterCoordinates():
            if coord.getObjId() in keptIds:
                outputs[KEPT].append(coord)
            elif coord.getObjId() in rejectedIds:
                outputs[REJECTED].append(coord)
            else:
                raise ValueError(f"Coordinate {coord.getObjId()} of {coord.getTomoId()} is in neither the kept nor "
                                 "the rejected table: run the protocol again.")
        self._defineOutputs(**outputs)
        for output in outputs.values():
            self._defineSourceRelation(self.inputCoordinates, output)
            self._defineSourceRelation(self.inputMasks, output)

    # ------------------------------------ info -------------------------------------------------
    def _validate(self):
        errors = self._validateNotEmpty(self.inputCoordinates, "Coordinates")
        errors += self._validateNotEmpty(self.inputMasks, "Context masks")
        if errors:
            return errors
        coordinates, masks = self.inputCoordinates.get(), self.inputMasks.get()
        errors += self._binaryMaskErrors(masks, "Context masks")
        if coordinates.getPrecedents() is None:
            return ["Coordinates: their tomograms (precedents) are missing: import or pick them on a set of "
                    "tomograms."]
        for label, samplingRate in (("Coordinates", coordinates.getSamplingRate()),
                                    ("Context masks", masks.getSamplingRate())):
            if not samplingRate or samplingRate <= 0:
                errors.append(f"{label}: the set has no sampling rate: import it again giving the sampling rate.")
        missing = sorted(key for key, maskFile in self._maskFiles().items() if maskFile is None)
        if missing:
            errors.append(f"Context masks: no mask for tomogram(s) {', '.join(missing)} (masks are matched by tsId, "
                          "else by the tomogram's file name): add their masks, or filter a subset of the "
                          "coordinates without them.")
        if self.distance.get() is None or self.distance.get() < 0:
            errors.append(f"Context: the distance must be 0 or more Å (got {self.distance.get()}).")
        return errors

    def _modeText(self):
        mode = CONTEXT_MODES[self.contextMode.get()]
        return mode if mode == "intersection" else f"{mode} within {self.distance.get():g} Å"

    def _counts(self):
        """(kept, rejected) coordinates, or None before the outputs exist."""
        kept, rejected = getattr(self, KEPT, None), getattr(self, REJECTED, None)
        if kept is None or rejected is None:
            return None
        return kept.getSize(), rejected.getSize()

    def _summary(self):
        counts = self._counts()
        if counts is None:
            return ["Filtering not finished yet."]
        kept, rejected = counts
        # one mask per tomogram, each applied to its own tomogram's coordinates (not intersected with each other)
        return [f"{kept} of {counted(kept + rejected, 'coordinate')} kept, {rejected} rejected ({self._modeText()}, "
                f"each coordinate against its own tomogram's context mask; "
                f"{counted(self.inputMasks.get().getSize(), 'mask')}, one per tomogram).",
                f"Kept: {KEPT}; rejected: {REJECTED} (same sampling rate "
                f"{self.inputCoordinates.get().getSamplingRate():.2f} Å/px and box size)."]

    def _methods(self):
        counts = self._counts()
        if counts is None:
            return []
        kept, rejected = counts
        return [f"{counted(kept + rejected, '3D coordinate')} {'was' if kept + rejected == 1 else 'were'} filtered "
                f"by the context mask of their tomogram ({self._modeText()}), keeping {kept}, with DeePiCt's context "
                "filter [deTeresaTrueba2023]."]
