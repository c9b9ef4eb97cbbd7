"""copick projects (the CZ cryo-ET data portal's format): import picks as coordinates, export coordinates as picks."""

import json
import os

from pyworkflow import BETA
from pyworkflow.protocol import params
from tomo.objects import SetOfCoordinates3D

from deepict.errors import DeepictError
from deepict.formats import copick
from deepict.io import write_coordinates
from deepict.jobs import ExportJob, ImportPicksJob
from deepict.parameters import default_of

from ..convert import appendPicks, coordinateGroups, readPicks, tomogramsByKey
from .protocol_base import ProtDeepictBase, counted

COPICK_HELP = ("A copick project: its config JSON (e.g. copick_config.json), or the folder holding "
               "copick_config.json. Only projects on the local file system (overlay/static roots local:// or a "
               "path); copy a portal or S3 project locally with copick first.")


#: The object name both copick forms start with, so that an export imports back with the forms' defaults.
DEFAULT_OBJECT = "particle"


def _defineIdentity(form):
    """The object, user and session naming a picks file (<user>_<session>_<object>.json); user and session
    default to what ``deepict export --format copick`` writes."""
    form.addParam("objectName", params.StringParam, default=DEFAULT_OBJECT, label="Object name",
                  help="The copick pickable object (e.g. ribosome): letters, digits, '.' or '-' (copick splits "
                       "picks file names at '_').")
    form.addParam("userId", params.StringParam, default=default_of(ExportJob, "copick_user_id"), label="User id",
                  help="The user id of the picks file.")
    form.addParam("sessionId", params.StringParam, default=default_of(ExportJob, "copick_session_id"),
                  label="Session id", help="The session id of the picks file ('0' is copick's id for picks made "
                                           "by a tool).")


def _identityErrors(protocol):
    errors = []
    for name, what in ((protocol.objectName.get(), "object name"), (protocol.userId.get(), "user id"),
                       (protocol.sessionId.get(), "session id")):
        try:
            copick.check_name(name or "", what)
        except DeepictError as exc:
            errors.append(str(exc))
    return errors


class ProtDeepictCopickImport(ProtDeepictBase):
    """Import the picks of a copick project as 3D coordinates of the input tomograms.

    Each tomogram (by tsId) is a copick run; the picks of the chosen object, user and session
    (ExperimentRuns/<tsId>/Picks/<user>_<session>_<object>.json, points in Å) become coordinates
    in the tomograms' voxels (x = location / sampling rate), with their scores. Tomograms without
    such a picks file are left out (listed in the summary).
    """

    _label = "import copick picks"
    _devStatus = BETA
    _possibleOutputs = {"outputCoordinates": SetOfCoordinates3D}
    _jobClass = ImportPicksJob

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms", important=True,
                      label="Tomograms",
                      help="The tomograms the picks are for; their tsIds name the copick runs and their sampling "
                           "rate converts Å to voxels.")
        form.addParam("copickProject", params.PathParam, important=True, label="copick project", help=COPICK_HELP)
        _defineIdentity(form)
        form.addParam("boxSize", params.IntParam, default=32, label="Box size (voxels)",
                      help="Box size of the imported coordinates (for extraction downstream).")
        self._defineComputeParams(form, gpu=False)

    def copickConfig(self):
        """The project given, as an absolute path (its config JSON or folder)."""
        return os.path.abspath(self.copickProject.get() or "")

    def matchedRuns(self):
        """The tsIds of the input tomograms that have this object's picks by this user and session."""
        found = []
        for key in tomogramsByKey(self.inputTomograms.get()):
            try:
                copick.find_picks(self.copickConfig(), key, self.objectName.get(), self.userId.get(),
                                  self.sessionId.get())
            except DeepictError:
                continue
            found.append(key)
        return found

    def _picksFolder(self):
        return os.path.abspath(self._getExtraPath("picks"))

    def _insertAllSteps(self):
        self._insertFunctionStep(self.importStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def importStep(self):
        job = ImportPicksJob(copick=self.copickConfig(), run=self.matchedRuns(), object=self.objectName.get(),
                             user_id=self.userId.get(), session_id=self.sessionId.get(),
                             voxel_size=self.inputTomograms.get().getSamplingRate(), out=self._picksFolder())
        self.runDeepict(job, "import_picks")

    def createOutputStep(self):
        tomograms = self.inputTomograms.get()
        coordinates = self._createSetOfCoordinates3D(self.inputTomograms)
        coordinates.setSamplingRate(tomograms.getSamplingRate())
        coordinates.setBoxSize(self.boxSize.get())
        tomos = tomogramsByKey(tomograms)
        for key in self.matchedRuns():
            appendPicks(coordinates, tomos[key], readPicks(os.path.join(self._picksFolder(), f"{key}.csv")))
        self._defineOutputs(outputCoordinates=coordinates)
        self._defineSourceRelation(self.inputTomograms, coordinates)

    def _validate(self):
        errors = self._validateTomograms(self.inputTomograms, "Tomograms")
        if errors:
            return errors
        errors = _identityErrors(self)
        if not self.copickProject.get():
            return errors + self._validateNotEmpty(self.copickProject, "copick project")
        try:
            copick.read_config(self.copickConfig())
        except DeepictError as exc:
            errors.append(str(exc))
        if errors:
            return errors
        if not self.matchedRuns():
            keys = ", ".join(tomogramsByKey(self.inputTomograms.get()))
            errors.append(f"No run of {self.copickConfig()} named like a tomogram ({keys}) has picks of object "
                          f"'{self.objectName.get()}' by user '{self.userId.get()}', session "
                          f"'{self.sessionId.get()}'. Runs there: "
                          f"{', '.join(copick.runs(self.copickConfig())) or 'none'}.")
        return errors

    def _summary(self):
        if not self.isFinished():
            return ["Import not finished yet."]
        matched = self.matchedRuns()
        lines = [f"{counted(self.outputCoordinates.getSize(), 'pick')} of '{self.objectName.get()}' "
                 f"({self.userId.get()}_{self.sessionId.get()}) from {counted(len(matched), 'run')} of "
                 f"{self.copickConfig()}."]
        missing = [k for k in tomogramsByKey(self.inputTomograms.get()) if k not in matched]
        if missing:
            lines.append(f"No picks for: {', '.join(missing)}")
        return lines

    def _methods(self):
        if not self.isFinished():
            return []
        # only files are read: no method to cite (the plugin's package reference stays)
        count = self.outputCoordinates.getSize()
        return [f"{counted(count, 'coordinate')} of '{self.objectName.get()}' {'was' if count == 1 else 'were'} "
                "imported from a copick project (the CZ cryo-ET data portal's format) with the DeePiCt Scipion "
                "plugin."]


class ProtDeepictCopickExport(ProtDeepictBase):
    """Write 3D coordinates into a copick project as picks.

    Each tomogram (by tsId) becomes a copick run with one picks file ExperimentRuns/<tsId>/Picks/
    <user>_<session>_<object>.json: points in Å (voxel x sampling rate), identity orientations, the
    coordinates' scores. The object is added to the project's config when missing (a particle with
    the given radius). Without a project, one is made in the run's extra/copick folder.
    """

    _label = "export to copick"
    _devStatus = BETA
    _jobClass = ExportJob

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputCoordinates", params.PointerParam, pointerClass="SetOfCoordinates3D", important=True,
                      label="Coordinates", help="The picks to write; their tomograms' tsIds name the runs.")
        form.addParam("copickProject", params.PathParam, allowsNull=True, label="copick project",
                      help=COPICK_HELP + " Left empty: a new project in this run's extra/copick folder. An existing "
                                         "picks file of the same run, object, user and session is replaced.")
        _defineIdentity(form)
        form.addParam("radius", params.FloatParam, allowsNull=True, label="Particle radius (Å)",
                      help="Radius of an object the project does not have yet (default: half the coordinates' box "
                           "size in Å).")
        self._defineComputeParams(form, gpu=False)

    def projectPath(self):
        """The copick config the export writes (the given project, else extra/copick/copick_config.json)."""
        given = self.copickProject.get()
        folder = os.path.abspath(given) if given else os.path.abspath(self._getExtraPath("copick"))
        return str(copick.config_path(folder))

    def _radius(self):
        if self.radius.get() is not None:
            return self.radius.get()
        coordinates = self.inputCoordinates.get()
        return (coordinates.getBoxSize() or 0) * coordinates.getSamplingRate() / 2 or None

    def _picksPath(self, *paths):
        return self._getExtraPath("picks", *paths)

    def _insertAllSteps(self):
        self._insertFunctionStep(self.exportStep, needsGPU=False)

    def exportStep(self):
        coordinates = self.inputCoordinates.get()
        os.makedirs(self._picksPath(), exist_ok=True)
        manifest = []
        for key, group in coordinateGroups(coordinates).items():
            path = os.path.abspath(self._picksPath(f"{key}.csv"))
            write_coordinates(path, group.table(coordinates.getSamplingRate(), withClass=False))
            manifest.append((key, path, os.path.abspath(group.tomogram.getFileName())))
        if not manifest:
            raise ValueError(f"{coordinates} holds no coordinate of any of its tomograms: nothing to export.")
        job = ExportJob(format=copick.COPICK_FORMAT, out=self.projectPath(), coords=[m[1] for m in manifest],
                        tomogram=[m[2] for m in manifest], tomo_name=[m[0] for m in manifest],
                        voxel_size=coordinates.getSamplingRate(), copick_object=self.objectName.get(),
                        copick_user_id=self.userId.get(), copick_session_id=self.sessionId.get(),
                        copick_radius=self._radius())
        self.runDeepict(job, "export_copick")
        with open(self._getExtraPath("copick_export.json"), "w") as handle:
            json.dump({"config": self.projectPath(), "runs": [m[0] for m in manifest]}, handle, indent=1)

    def exportedRuns(self):
        path = self._getExtraPath("copick_export.json")
        if not os.path.exists(path):
            return []
        with open(path) as handle:
            return json.load(handle)["runs"]

    def _validate(self):
        errors = self._validateNotEmpty(self.inputCoordinates, "Coordinates") + _identityErrors(self)
        if self.radius.get() is not None and not self.radius.get() > 0:
            errors.append(f"Particle radius: {self.radius.get():g} Å is no radius; give one in Å, or leave it empty "
                          "(half the coordinates' box size).")
        given = self.copickProject.get()
        if given and os.path.exists(copick.config_path(given)):
            try:
                copick.roots(given)
            except DeepictError as exc:
                errors.append(str(exc))
        return errors

    def _summary(self):
        if not self.isFinished():
            return ["Export not finished yet."]
        return [f"Picks of '{self.objectName.get()}' ({self.userId.get()}_{self.sessionId.get()}) written to "
                f"{self.projectPath()}, runs: {', '.join(self.exportedRuns())}."]

    def _methods(self):
        if not self.isFinished():
            return []
        # only files are written: no method to cite (the plugin's package reference stays)
        count = self.inputCoordinates.get().getSize()
        return [f"{counted(count, 'coordinate')} {'was' if count == 1 else 'were'} exported as copick picks of "
                f"'{self.objectName.get()}' (the CZ cryo-ET data portal's format) with the DeePiCt Scipion plugin."]
