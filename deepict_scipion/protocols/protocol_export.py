"""Export 3D coordinates for sub-tomogram averaging: RELION 4, RELION 5, Warp/M, Dynamo, DeePiCt motl."""

import json
import os

from pyworkflow import BETA
from pyworkflow.protocol import params
from pyworkflow.protocol.constants import STEPS_PARALLEL

from deepict.formats import class_map_path
from deepict.io import write_coordinates
from deepict.jobs import ExportJob

from ..constants import FILAMENTS_ATTRIBUTE
from ..convert import coordinateGroups, coordinateSetErrors, isMarked
from .protocol_base import ProtDeepictBase, counted, listed

#: Export formats of ``deepict export``, with the form label and the protocol parameter selecting them.
EXPORT_FORMATS = {
    "relion4": ("RELION 4 particles STAR", "exportRelion4"),
    "relion5": ("RELION 5 particles STAR", "exportRelion5"),
    "warp": ("Warp/M STAR per tomogram", "exportWarp"),
    "dynamo": ("Dynamo table (.tbl + .doc)", "exportDynamo"),
    "motl": ("DeePiCt motive list per tomogram", "exportMotl"),
}


class ProtDeepictExport(ProtDeepictBase):
    """Export 3D coordinates for sub-tomogram averaging programs.

    Any SetOfCoordinates3D (DeePiCt picks, imported or manual coordinates) is written as a RELION 4
    particles STAR, a RELION 5 particles STAR (centred Å coordinates, plus pixel coordinates for
    Scipion's reader), one Warp/M STAR per tomogram (rlnMicrographName <tsId>.tomostar), a Dynamo
    table with its .doc file, and/or DeePiCt motive lists. Coordinates can be rescaled to another
    pixel size (e.g. the unbinned tilt-series pixel size RELION and Warp expect; not Dynamo, whose
    .doc points at the tomograms). The class of each coordinate is its group id (1 when it has none) and the
    score is kept. Files are written atomically into the protocol's extra folder.
    """

    _label = "export coordinates (RELION/Warp/Dynamo)"
    _devStatus = BETA
    stepsExecutionMode = STEPS_PARALLEL

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputCoordinates", params.PointerParam, pointerClass="SetOfCoordinates3D", important=True,
                      label="Coordinates", help="3D coordinates of any origin (DeePiCt picks, imports, manual picks).")
        form.addParam("outputPixelSize", params.FloatParam, allowsNull=True, label="Output pixel size (Å)",
                      help="Pixel size of the written coordinates, e.g. the unbinned tilt-series pixel size for "
                           "RELION 4 and Warp (empty: the coordinates' sampling rate). Coordinates are multiplied "
                           "by sampling rate / output pixel size, as Scipion's reliontomo and dynamo plugins do. "
                           "RELION 5's centred coordinates are in Å and do not depend on it; Dynamo stays in the "
                           "tomograms' voxels, as its .doc points at the tomograms.")
        form.addSection(label="Formats")
        for fmt, (label, param) in EXPORT_FORMATS.items():
            form.addParam(param, params.BooleanParam, default=True, label=label, help=self._formatHelp(fmt))
        self._defineComputeParams(form, gpu=False, threads=2)

    @staticmethod
    def _formatHelp(fmt):
        return {
            "relion4": "extra/particles_relion4.star (table data_particles): rlnTomoName = tsId, "
                       "rlnCoordinateX/Y/Z in output pixels (0-based, no +1, as reliontomo writes them), "
                       "rlnTomoParticleId, rlnClassNumber = rlnTomoManifoldIndex = class, "
                       "rlnAutopickFigureOfMerit = score, rlnDetectorPixelSize = the output pixel size (so "
                       "reliontomo's 'import 3D coordinates from a star file' needs no sampling rate).",
            "relion5": "extra/particles_relion5.star ('# version 50001', data_particles): "
                       "rlnCenteredCoordinateX/Y/ZAngst = (x - size/2) * voxel size (what RELION 5 reads), and "
                       "rlnCoordinateX/Y/Z in output pixels and rlnDetectorPixelSize as for RELION 4 (what "
                       "Scipion's reliontomo import reads; leave its coordinates sampling rate empty).",
            "warp": "extra/warp/<tsId>.star: rlnCoordinateX/Y/Z in output pixels, rlnMicrographName = "
                    "<tsId>.tomostar. Use WarpTools ts_export_particles --coords_angpix <output pixel size>.",
            "dynamo": "extra/particles.tbl (40 columns: 20 tomogram index, 22 class, 24-26 x y z 0-based as in "
                      "Scipion's dynamo plugin) and extra/particles.doc (index -> tomogram path). Always in the "
                      "tomograms' voxels, whatever the output pixel size: the .doc points at those tomograms.",
            "motl": "extra/motl/<tsId>.csv: DeePiCt 20-column motive lists (1 score, 8-10 x y z, 20 class).",
        }[fmt]

    # ------------------------------------ steps ------------------------------------------------
    def selectedFormats(self):
        return [fmt for fmt, (_, param) in EXPORT_FORMATS.items() if getattr(self, param).get()]

    def _insertAllSteps(self):
        convert = self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        steps = [self._insertFunctionStep(self.exportStep, fmt, prerequisites=[convert], needsGPU=False)
                 for fmt in self.selectedFormats()]
        self._insertFunctionStep(self.summaryStep, prerequisites=steps, needsGPU=False)

    def _picksPath(self, *paths):
        return self._getExtraPath("picks", *paths)

    def _manifestPath(self):
        return self._picksPath("tomograms.json")

    def convertInputStep(self):
        """Per-tomogram picks CSVs (BOTTOM_LEFT voxels, score, class) and a manifest of the tomograms."""
        coordinates = self.inputCoordinates.get()
        os.makedirs(self._picksPath(), exist_ok=True)
        manifest = []
        for key, group in coordinateGroups(coordinates).items():
            csv = os.path.abspath(self._picksPath(f"{key}.csv"))
            voxelSize = group.tomogram.getSamplingRate() or coordinates.getSamplingRate()
            write_coordinates(csv, group.table(voxelSize, filaments=isMarked(coordinates, FILAMENTS_ATTRIBUTE)))
            manifest.append({"tsId": key, "coords": csv, "tomogram": os.path.abspath(group.tomogram.getFileName()),
                             "voxel_size": voxelSize, "count": len(group)})
        if not manifest:
            raise ValueError(f"{coordinates} holds no coordinate of any of its tomograms: nothing to export.")
        with open(self._manifestPath(), "w") as handle:
            json.dump(manifest, handle, indent=1)

    def _manifest(self):
        with open(self._manifestPath()) as handle:
            return json.load(handle)

    def exportTarget(self, fmt):
        """Where ``deepict export --format fmt`` writes (a file, or a folder for warp and motl)."""
        targets = {"relion4": "particles_relion4.star", "relion5": "particles_relion5.star", "warp": "warp",
                   "dynamo": "particles.tbl", "motl": "motl"}
        if fmt not in targets:
            raise ValueError(f"Unknown export format '{fmt}': choose one of {', '.join(EXPORT_FORMATS)}.")
        return os.path.abspath(self._getExtraPath(targets[fmt]))

    def outputPixelSizeValue(self):
        """The output pixel size: the parameter, else the coordinates' sampling rate."""
        value = self.outputPixelSize.get()
        return value if value is not None else self.inputCoordinates.get().getSamplingRate()

    def exportJob(self, fmt, manifest):
        pixelSize = self.outputPixelSizeValue()
        return ExportJob(format=fmt, out=self.exportTarget(fmt), coords=[item["coords"] for item in manifest],
                         tomogram=[item["tomogram"] for item in manifest],
                         tomo_name=[item["tsId"] for item in manifest],
                         # Scipion's sampling rate is authoritative (MRC headers are often wrong); a set has one.
                         voxel_size=manifest[0]["voxel_size"],
                         # the .doc names the tomograms: Dynamo stays in their voxels
                         output_pixel_size=None if fmt == "dynamo" else pixelSize)

    def exportStep(self, fmt):
        self.runDeepict(self.exportJob(fmt, self._manifest()), f"export_{fmt}")

    def summaryStep(self):
        files = [os.path.relpath(path, self._getExtraPath()) for path in self.exportedFiles()]
        with open(self._getExtraPath("exported_files.json"), "w") as handle:
            json.dump({"formats": self.selectedFormats(), "output_pixel_size": self.outputPixelSizeValue(),
                       "files": files}, handle, indent=1)

    def exportedFiles(self):
        """The export files that exist now, in format order (absolute paths)."""
        files = []
        for fmt in self.selectedFormats():
            target = self.exportTarget(fmt)
            if fmt == "dynamo":
                candidates = [target, os.path.splitext(target)[0] + ".doc"]
            elif os.path.isdir(target):
                candidates = [os.path.join(target, name) for name in sorted(os.listdir(target))]
            else:
                candidates = [target]
            candidates.append(str(class_map_path(target)))  # written when the classes are names
            files += [path for path in candidates if os.path.isfile(path)]
        return files

    # ------------------------------------ info ------------------------------------------------
    def _validate(self):
        errors = self._validateNotEmpty(self.inputCoordinates, "Input coordinates")
        if errors:
            return errors
        if not self.selectedFormats():
            errors.append("Select at least one export format.")
        if self.outputPixelSize.get() is not None and not self.outputPixelSize.get() > 0:
            errors.append(f"The output pixel size must be > 0 Å (got {self.outputPixelSize.get()}); leave it empty "
                          "to keep the coordinates' sampling rate.")
        coordinates = self.inputCoordinates.get()
        if not coordinates.getSamplingRate() or coordinates.getSamplingRate() <= 0:
            errors.append(f"{coordinates} has no sampling rate: import the coordinates with their tomograms.")
        return errors + coordinateSetErrors(coordinates, "Input coordinates")

    def _summary(self):
        if not self.isFinished():
            return ["Formats: " + ", ".join(EXPORT_FORMATS[f][0] for f in self.selectedFormats())]
        pixel = self.outputPixelSizeValue()
        summary = [f"{counted(self.inputCoordinates.get().getSize(), 'coordinate')} exported at {pixel:g} Å/pixel "
                   f"(RELION 5: also centred Å; Dynamo: the tomograms' voxels). "
                   f"Files in {os.path.abspath(self._getExtraPath())}:"]
        summary += [f"  {os.path.relpath(path, self._getExtraPath())}" for path in self.exportedFiles()]
        return summary

    def _methods(self):
        if not self.isFinished():
            return []
        # only files are written: no method to cite (the plugin's package reference stays)
        return [f"{counted(self.inputCoordinates.get().getSize(), 'coordinate')} were exported for "
                f"{listed(EXPORT_FORMATS[f][0] for f in self.selectedFormats())} at "
                f"{self.outputPixelSizeValue():g} Å/pixel with the DeePiCt Scipion plugin."]
