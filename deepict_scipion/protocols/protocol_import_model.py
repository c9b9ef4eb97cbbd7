"""Import a DeePiCt network file (a published checkpoint or one of ours) into the project."""

import importlib.util
import os

from pyworkflow import BETA
from pyworkflow.protocol import params

from deepict.conventions import voxel_sizes_differ
from deepict.jobs import ImportModelJob

from ..objects import DeepictModel
from .protocol_base import ProtDeepictBase


class ProtDeepictImportModel(ProtDeepictBase):
    """Import a trained DeePiCt network.

    Accepts the published DeePiCt 3D checkpoints (.pth: ribosome, membrane, microtubule, FAS; read
    safely, without running pickled code) and model files written by this plugin. Published
    checkpoints do not record their voxel size: give it (13.48 Å for the published networks, which
    were trained on 4x binned 3.37 Å data, spectrum-matched to the authors' reference).
    """

    _label = "import model"
    _devStatus = BETA
    _possibleOutputs = {"deepictModel": DeepictModel}

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("modelFile", params.PathParam, important=True, label="Model file",
                      help="A DeePiCt .pth checkpoint or a deepict_scipion model file (.pt).")
        form.addParam("voxelSize", params.FloatParam, allowsNull=True, label="Voxel size (Å)",
                      help="Voxel size the network was trained at. Needed for DeePiCt checkpoints (published "
                           "networks: 13.48 Å, 4x binned 3.37 Å data); leave it empty for our model files, which record "
                           "it. Tomograms at another voxel size (up to 4x either way) are rescaled to it for the "
                           "network, and their results come back at their own.")

    def processImportDict(self, importDict, importDir):
        """A relative model file in a workflow template is read next to the template.

        pyworkflow calls this when it loads a template from a file (``importDir``: the template's folder), for
        import protocols to resolve relative paths, as pwem's image imports do with theirs; a path that exists as
        given (from the current folder) is kept, as they keep it.
        """
        path = importDict.get("modelFile")
        if path and not os.path.isabs(path) and not os.path.exists(path):
            beside = os.path.join(importDir, path)
            if os.path.exists(beside):
                importDict["modelFile"] = os.path.abspath(beside)
        return importDict

    def _insertAllSteps(self):
        self._insertFunctionStep(self.importStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _modelPath(self):
        return os.path.abspath(self._getExtraPath("model.pt"))

    def importStep(self):
        self.runDeepict(ImportModelJob(checkpoint=os.path.abspath(self.modelFile.get()), out=self._modelPath(),
                                       voxel_size=self.voxelSize.get() or None), "import-model")

    def createOutputStep(self):
        model = DeepictModel(filename=self._getExtraPath("model.pt"))
        model.setFromInfo(self.describeModel(self._modelPath(), self._modelInfoPath()))
        self._defineOutputs(deepictModel=model)

    def _validate(self):
        path = self.modelFile.get()
        if not path or not os.path.isfile(path):
            return [f"Model file not found: {path}. Give the path of a .pth/.pt file."]
        voxelSize = self.voxelSize.get()
        if voxelSize is not None and voxelSize <= 0:
            return [f"Voxel size: {voxelSize:g} Å is not a voxel size; give the one the network was trained at "
                    "(13.48 Å for the published networks) or leave it empty for our .pt model files."]
        if path.endswith(".pth") and not voxelSize:
            return ["DeePiCt checkpoints (.pth) do not record their voxel size: give it (13.48 Å for the "
                    "published networks)."]
        if importlib.util.find_spec("torch") is None:
            return []  # the engine and torch live in an environment of their own: the import step reads the file
        # The engine's own reader, cheap (tensors memory-mapped) and safe (no pickled code runs); torch is
        # imported only now, not when Scipion loads the plugin.
        from deepict.nn.model_files import model_file_problem, read_model_info
        problem = model_file_problem(path)
        if problem:
            return [problem]
        recorded = None if path.endswith(".pth") else read_model_info(path).voxel_size
        if voxelSize and recorded and voxel_sizes_differ(voxelSize, recorded):
            return [f"Voxel size: {os.path.basename(path)} records its own, {recorded:g} Å: leave the field empty "
                    f"(the engine refuses {voxelSize:g} Å)."]
        return []

    def _summary(self):
        if hasattr(self, "deepictModel"):
            return [f"Imported {self.deepictModel} from {self.modelFile.get()}."]
        return ["No model imported yet."]

    def _methods(self):
        if hasattr(self, "deepictModel"):
            return [f"A DeePiCt network [deTeresaTrueba2023] was imported from {os.path.basename(self.modelFile.get())}."]
        return []
