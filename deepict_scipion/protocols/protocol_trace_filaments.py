"""Trace filaments in masks or probability maps and sample oriented coordinates along them (``deepict filaments``)."""

import os

from pyworkflow import BETA
from pyworkflow.protocol import params
from pyworkflow.protocol.constants import STEPS_PARALLEL
from tomo.objects import SetOfCoordinates3D

from deepict import jobs
from deepict.conventions import FILAMENT_ID_COLUMN
from deepict.filaments.options import FilamentOptions
from deepict.infer.rescale import to_grid_voxels
from deepict.io import read_coordinates

from ..constants import FILAMENTS_ATTRIBUTE
from ..convert import appendPicks, mark, tomogramKey
from .protocol_base import ProtDeepictBase, counted

OUTPUT = "outputCoordinates"
#: What the input masks hold (the form's choice).
MASK_KINDS = ("binary masks", "probability maps")


class ProtDeepictTraceFilaments(ProtDeepictBase):
    """Trace filaments (microtubules, actin, ...) along their centre lines and sample particles on them.

    Each tomogram's filament mask (a SetOfTomoMasks: DeePiCt's 3D or 2D segmentation, membrain-seg,
    or the probability maps the pick / segment protocols keep, thresholded here) is skeletonised, cut
    at crossings and contacts, joined where pieces continue each other, smoothed and sampled every
    spacing Å of arc. Each coordinate is one particle for filament averaging (RELION helical, Dynamo,
    Warp/M): its group is its filament, its matrix holds the filament's direction (RELION tilt and
    psi, the rotation about the filament free or stepped), so that subtomogram extraction and the
    exports use it.
    """

    _label = "trace filaments"
    _devStatus = BETA
    _possibleOutputs = {OUTPUT: SetOfCoordinates3D}
    _jobClass = jobs.FilamentsJob
    stepsExecutionMode = STEPS_PARALLEL

    def _tracing(self, name):
        return f"tracing.{name}"

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms", important=True,
                      label="Tomograms", help="The tomograms the filaments are in: the coordinates belong to them.")
        form.addParam("inputMasks", params.PointerParam, pointerClass="SetOfTomoMasks", important=True,
                      label="Filament masks",
                      help="One mask per tomogram, matched by tsId (else by tomogram file name): a filament "
                           "segmentation (voxels above 0 are filament), or the probability maps the pick / segment "
                           "3D protocols keep ('Keep probability maps'). The masks may come from the same tomograms "
                           "at another binning (e.g. segmented at bin 4): the filaments are traced at the masks' "
                           "sampling rate and the coordinates scaled to these tomograms.")
        form.addParam("maskKind", params.EnumParam, choices=list(MASK_KINDS), default=0, label="The masks are",
                      display=params.EnumParam.DISPLAY_HLIST,
                      help="Binary masks: every voxel above 0 is filament. Probability maps: voxels from the "
                           "threshold on are filament.")
        form.addParam("threshold", params.FloatParam, default=self._default("threshold"),
                      condition="maskKind == 1", label="Threshold",
                      help="Probability from which a voxel of the maps is filament.")
        form.addSection(label="Tracing")
        form.addParam("spacing", params.FloatParam, default=40.0, label="Spacing (Å)",
                      help="Distance in Å along the filament between two sampled particles (at least one voxel), "
                           "e.g. 40 for a 4 nm step, or the helical rise times the number of asymmetric units "
                           "per particle.")
        form.addParam("minLength", params.FloatParam, default=self._default(self._tracing("min_length_angstrom")),
                      label="Minimum length (Å)", help="Filaments shorter than this many Å (after joining their "
                                                       "pieces) are left out: fragments and noise.")
        form.addParam("erosion", params.FloatParam, default=self._default(self._tracing("erosion_angstrom")),
                      label="Erosion (Å)",
                      help="Erode the mask by this many Å before tracing, to separate filaments whose masks touch "
                           "(about a third of the filament's diameter, e.g. 80 Å for microtubules); 0 = none. A "
                           "crossing or a contact is handled without it, but a long side-by-side contact needs it.")
        form.addParam("joinDistance", params.FloatParam,
                      default=self._default(self._tracing("join_distance_angstrom")), label="Join distance (Å)",
                      expertLevel=params.LEVEL_ADVANCED,
                      help="Largest gap in Å between two pieces joined into one filament: across a crossing (about "
                           "the filaments' width) or a hole in the mask.")
        form.addParam("joinAngle", params.FloatParam, default=self._default(self._tracing("join_angle")),
                      label="Join angle (degrees)", expertLevel=params.LEVEL_ADVANCED,
                      help="Largest bend in degrees at a join. Crossing filaments meet at larger angles and stay "
                           "apart.")
        form.addParam("rotStep", params.FloatParam, default=self._default(self._tracing("rot_step")),
                      label="Rotation step per particle (degrees)",
                      help="The rotation about the filament axis (RELION rot) of the n-th particle of a filament "
                           "is n times this, e.g. 27.69 (360/13) for 13-protofilament microtubules; 0 leaves it at "
                           "0 for the averaging to search.")
        form.addParam("boxSize", params.IntParam, default=64, label="Box size (px)",
                      help="Box size of the output coordinates (extraction), in voxels of the tomograms.")
        self._defineComputeParams(form, gpu=False, threads=2)

    # ------------------------------------ steps ------------------------------------------------
    def _maskFiles(self):
        return self.masksByKey(self.inputMasks.get(), self.inputTomograms.get())

    def _insertAllSteps(self):
        # prerequisites=[]: the tomograms' steps are independent (pyworkflow chains each to the previous by default)
        steps = [self._insertFunctionStep(self.traceStep, key, maskFile, prerequisites=[], needsGPU=False)
                 for key, maskFile in sorted(self._maskFiles().items())]
        self._insertFunctionStep(self.createOutputStep, prerequisites=steps, needsGPU=False)

    def _tablePath(self, key):
        return os.path.abspath(self._getExtraPath(f"{key}_filaments.csv"))

    def traceJob(self, key, maskFile):
        """The ``deepict filaments`` job of tomogram ``key``."""
        probabilities = self.maskKind.get() == MASK_KINDS.index("probability maps")
        return jobs.FilamentsJob(
            mask=None if probabilities else os.path.abspath(maskFile),
            probability_map=os.path.abspath(maskFile) if probabilities else None,
            threshold=self.threshold.get(), voxel_size=self.inputMasks.get().getSamplingRate(),
            out=self._tablePath(key),
            tracing=FilamentOptions(spacing_angstrom=self.spacing.get(), min_length_angstrom=self.minLength.get(),
                                    erosion_angstrom=self.erosion.get(),
                                    join_distance_angstrom=self.joinDistance.get(), join_angle=self.joinAngle.get(),
                                    rot_step=self.rotStep.get()))

    def traceStep(self, key, maskFile):
        self.runDeepict(self.traceJob(key, maskFile), f"filaments_{key}")

    def createOutputStep(self):
        tomograms = self.inputTomograms.get()
        coordinates = self._createSetOfCoordinates3D(self.inputTomograms)
        coordinates.setSamplingRate(tomograms.getSamplingRate())
        coordinates.setBoxSize(self.boxSize.get())
        # Traced in the masks' voxels; the masks may be binned (see _validate).
        ratio = self.inputMasks.get().getSamplingRate() / tomograms.getSamplingRate()
        for tomo in [t.clone() for t in tomograms.iterItems(orderBy="id")]:
            table = read_coordinates(self._tablePath(tomogramKey(tomo)))
            table.xyz = to_grid_voxels(table.xyz, ratio)
            appendPicks(coordinates, tomo, table, groupIds=table.column(FILAMENT_ID_COLUMN, 1).astype(int))
        mark(coordinates, FILAMENTS_ATTRIBUTE)  # exports write the groups as helical tubes
        self._defineOutputs(**{OUTPUT: coordinates})
        self._defineSourceRelation(self.inputTomograms, coordinates)
        self._defineSourceRelation(self.inputMasks, coordinates)

    # ------------------------------------ info -------------------------------------------------
    def _validate(self):
        errors = self._validateTomograms(self.inputTomograms, "Tomograms")
        errors += self._validateNotEmpty(self.inputMasks, "Filament masks")
        if errors:
            return errors
        tomograms, masks = self.inputTomograms.get(), self.inputMasks.get()
        errors += self._validateMasksFor(masks, tomograms, "Filament masks", anyBinning=True,
                                         binary=MASK_KINDS[self.maskKind.get()] == "binary masks")
        sampling = masks.getSamplingRate()
        if sampling and (self.spacing.get() is None or self.spacing.get() < sampling):
            errors.append(f"Spacing: {self.spacing.get()} Å is smaller than a voxel ({sampling:.2f} Å): give at "
                          f"least {sampling:.2f} Å (points closer than a voxel carry no new position).")
        for label, value in (("Minimum length", self.minLength.get()), ("Erosion", self.erosion.get()),
                             ("Join distance", self.joinDistance.get())):
            if value is None or value < 0:
                errors.append(f"{label}: give a length of 0 Å or more (got {value}).")
        if self.joinAngle.get() is None or not 0 <= self.joinAngle.get() <= 90:
            errors.append(f"Join angle: give 0 to 90 degrees (got {self.joinAngle.get()}).")
        if self.maskKind.get() == 1 and (self.threshold.get() is None or not 0 < self.threshold.get() <= 1):
            errors.append(f"Threshold: give a probability above 0 and at most 1 (got {self.threshold.get()}).")
        return errors

    def _counts(self):
        """(particles, filaments, tomograms), or None before the output exists."""
        output = getattr(self, OUTPUT, None)
        if output is None:
            return None
        filaments = {(c.getTomoId(), c.getGroupId()) for c in output.iterCoordinates()}
        return output.getSize(), len(filaments), len(set(output.getTSIds()))

    def _summary(self):
        counts = self._counts()
        if counts is None:
            return ["Tracing not finished yet."]
        particles, filaments, tomograms = counts
        rot = f"rot stepped by {self.rotStep.get():g}°" if self.rotStep.get() else "rot free (0)"
        return [f"{counted(filaments, 'filament')} traced in {counted(tomograms, 'tomogram')}: "
                f"{counted(particles, 'particle')} every "
                f"{self.spacing.get():g} Å, one group per filament.",
                f"Orientation: the filament's direction as RELION tilt/psi in each coordinate's matrix, {rot}."]

    def _methods(self):
        counts = self._counts()
        if counts is None:
            return []
        particles, filaments, _ = counts
        verb = "was" if filaments == 1 else "were"
        return [f"{counted(filaments, 'filament')} {verb} traced along their centre lines in "
                f"{counted(self.inputMasks.get().getSize(), 'segmentation')} and sampled every "
                f"{self.spacing.get():g} Å ({counted(particles, 'particle')} oriented along the filaments), following "
                "DeePiCt's filament sampling [deTeresaTrueba2023]."]
