"""Import coordinates that other tools wrote: DeePiCt tables (``deepict pick``, annotations) and RELION 4/5 STAR."""

import glob
import os

from pyworkflow import BETA
from pyworkflow.protocol import params
from tomo.objects import SetOfCoordinates3D

from deepict.conventions import CLASS_COLUMN, voxel_sizes_differ
from deepict.errors import DeepictError
from deepict.formats import TomogramInfo, particles_star_format, read_exported
from deepict.infer.rescale import table_at_voxel_size
from deepict.io import read_coordinates, write_coordinates

from ..convert import appendPicks, readPicks, tomogramsByKey
from .protocol_base import ProtDeepictBase, counted

#: The form's formats, in its order: a DeePiCt table per tomogram, or one RELION 4/5 particles STAR for all.
FORMAT_TABLES, FORMAT_STAR = 0, 1
FORMAT_LABELS = ["DeePiCt tables (CSV/TSV)", "RELION 4/5 particles STAR"]


def tableOwner(path, keys):
    """The tomogram key (tsId) a table file belongs to: the longest key that starts its file name (vpp_003 for
    vpp_003_ribosome.csv), or None."""
    name = os.path.basename(path)
    owners = [key for key in keys if name == key or name.startswith(key + "_") or name.startswith(key + ".")]
    return max(owners, key=len) if owners else None


class ProtDeepictImportCoordinates(ProtDeepictBase):
    """Import 3D coordinates written outside Scipion as coordinates of the input tomograms.

    DeePiCt tables are the CSV/TSV files of ``deepict pick`` and of annotations (x, y, z in 0-based
    voxels, optional score and class columns, the voxel size in a ``# voxel_size_angstrom`` line): one
    file per tomogram, named after its tsId (vpp_003.csv, vpp_003_ribosome.csv). A RELION 4 or 5
    particles STAR file holds all tomograms (``rlnTomoName`` = tsId); RELION 5's centred Å are taken
    from each tomogram's size, as ``deepict import-star`` does. Scores and RELION angles are kept.
    """

    _label = "import coordinates (DeePiCt/RELION)"
    _devStatus = BETA
    _possibleOutputs = {"outputCoordinates": SetOfCoordinates3D}

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms", important=True,
                      label="Tomograms",
                      help="The tomograms the coordinates are for: their tsIds name the files (DeePiCt tables) or "
                           "the rlnTomoName values (RELION), and their voxel size and size convert the values.")
        form.addParam("fileFormat", params.EnumParam, choices=FORMAT_LABELS, default=FORMAT_TABLES,
                      label="Format",
                      help="DeePiCt tables: one CSV/TSV per tomogram ('deepict pick' output, or annotations with "
                           "x y z columns). RELION particles STAR: RELION 5's rlnCenteredCoordinate{X,Y,Z}Angst (Å "
                           "from the tomogram's centre) where the file has them, else RELION 4's rlnCoordinateX/Y/Z "
                           "in pixels of rlnDetectorPixelSize (else of the tomograms' voxels), as 'deepict "
                           "import-star' reads them.")
        form.addParam("filesPath", params.PathParam, important=True, label="File or folder",
                      help="A RELION particles STAR file; for DeePiCt tables, the folder holding them (or one "
                           "table).")
        form.addParam("filesPattern", params.StringParam, default="*.csv", condition=f"fileFormat == {FORMAT_TABLES}",
                      label="Pattern",
                      help="Which files of the folder to read (e.g. *_ribosome.csv); each must start with the tsId "
                           "of one tomogram.")
        form.addParam("className", params.StringParam, default="", condition=f"fileFormat == {FORMAT_TABLES}",
                      label="Class (optional)",
                      help="Keep only the rows of this class where the tables have a class column (e.g. ribosome "
                           "in a multi-class 'deepict pick' output). Empty: every row.")
        form.addParam("boxSize", params.IntParam, default=32, label="Box size (voxels)",
                      help="Box size of the imported coordinates (for extraction downstream).")
        self._defineComputeParams(form, gpu=False)

    # ----------------------------------------- files -----------------------------------------
    def tableFiles(self):
        """{tsId: table file} of the DeePiCt tables given (a file, or the folder's files matching the pattern)."""
        path = os.path.abspath(self.filesPath.get() or "")
        files = [path] if os.path.isfile(path) else sorted(glob.glob(os.path.join(path, self.filesPattern.get())))
        keys = list(tomogramsByKey(self.inputTomograms.get()))
        return {tableOwner(f, keys): f for f in files if tableOwner(f, keys)}

    def _tablesFolder(self):
        return os.path.abspath(self._getExtraPath("coordinates"))

    def _importedPath(self, key):
        return os.path.join(self._tablesFolder(), f"{key}.csv")

    # ------------------------------------------ steps ------------------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.importStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def importStep(self):
        """Each tomogram's coordinates as a DeePiCt table in its voxels (extra/coordinates/<tsId>.csv)."""
        os.makedirs(self._tablesFolder(), exist_ok=True)
        for key, table in self.readCoordinates().items():
            write_coordinates(self._importedPath(key), table)
            self.info(f"{key}: {counted(len(table), 'coordinate')}")

    def readCoordinates(self):
        """{tsId: CoordinateTable in the tomogram's voxels} of the tomograms that have coordinates."""
        tomograms = tomogramsByKey(self.inputTomograms.get())
        if self.fileFormat.get() != FORMAT_TABLES:
            infos = [TomogramInfo(key, tuple(int(v) for v in tomo.getDim()), tomo.getSamplingRate(), tomo.getFileName())
                     for key, tomo in tomograms.items()]
            star = os.path.abspath(self.filesPath.get())
            read = read_exported(particles_star_format(star), star, infos)
            return {info.name: table for info, table in zip(infos, read) if len(table)}
        tables = {}
        for key, path in self.tableFiles().items():
            table = self._ofClass(read_coordinates(path))
            voxel = tomograms[key].getSamplingRate()
            if table.voxel_size and voxel_sizes_differ(table.voxel_size, voxel):
                table = table_at_voxel_size(table, voxel)  # another binning of the same tomogram
            if len(table):
                tables[key] = table
        return tables

    def _ofClass(self, table):
        wanted = (self.className.get() or "").strip()
        if not wanted or CLASS_COLUMN not in table.columns:
            return table
        return table.rows(table.columns[CLASS_COLUMN].astype(str) == wanted)

    def createOutputStep(self):
        tomograms = self.inputTomograms.get()
        coordinates = self._createSetOfCoordinates3D(self.inputTomograms)
        coordinates.setSamplingRate(tomograms.getSamplingRate())
        coordinates.setBoxSize(self.boxSize.get())
        for key, tomo in tomogramsByKey(tomograms).items():
            if os.path.exists(self._importedPath(key)):
                appendPicks(coordinates, tomo, readPicks(self._importedPath(key)))
        self._defineOutputs(outputCoordinates=coordinates)
        self._defineSourceRelation(self.inputTomograms, coordinates)

    # ------------------------------------------ info -------------------------------------------
    def _validate(self):
        errors = self._validateTomograms(self.inputTomograms, "Tomograms")
        path = self.filesPath.get()
        if errors or not path:
            return errors + ([] if path else ["File or folder: give the coordinates' file (or folder)."])
        if not os.path.exists(path):
            return [f"File or folder: {path} not found."]
        if self.fileFormat.get() == FORMAT_TABLES:
            return self._validateTables(path)
        if not os.path.isfile(path):
            return [f"File or folder: {path} is a folder; give the RELION particles STAR file."]
        try:
            found = self.readCoordinates()
        except DeepictError as exc:
            return [f"{exc} (the tomograms' tsIds: {', '.join(tomogramsByKey(self.inputTomograms.get()))})"]
        return [] if found else [f"{path}: no coordinates of these tomograms."]

    def _validateTables(self, path):
        keys = list(tomogramsByKey(self.inputTomograms.get()))
        if not self.tableFiles():
            where = path if os.path.isfile(path) else os.path.join(path, self.filesPattern.get())
            return [f"No table in {where} is named after a tomogram: each file must start with a tsId "
                    f"({', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}), e.g. {keys[0]}.csv."]
        try:
            found = self.readCoordinates()
        except DeepictError as exc:
            return [str(exc)]
        if not found:
            wanted = self.className.get()
            return [f"The tables hold no rows{f' of class {wanted}' if wanted else ''}."]
        return []

    def _summary(self):
        if not hasattr(self, "outputCoordinates"):
            return ["Import not finished yet."]
        keys = [k for k in tomogramsByKey(self.inputTomograms.get()) if os.path.exists(self._importedPath(k))]
        missing = [k for k in tomogramsByKey(self.inputTomograms.get()) if k not in keys]
        lines = [f"{counted(self.outputCoordinates.getSize(), 'coordinate')} of {counted(len(keys), 'tomogram')} from "
                 f"{self.filesPath.get()} ({FORMAT_LABELS[self.fileFormat.get()]})."]
        if missing:
            lines.append(f"No coordinates for: {', '.join(missing)}")
        return lines

    def _methods(self):
        if not hasattr(self, "outputCoordinates"):
            return []
        source = ("DeePiCt coordinate tables" if self.fileFormat.get() == FORMAT_TABLES
                  else "a RELION particles STAR file")
        return [f"{counted(self.outputCoordinates.getSize(), 'coordinate')} were imported from {source}."]
