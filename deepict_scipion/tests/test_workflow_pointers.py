"""A README-style chain (import tomograms -> import coordinates -> train 3D) survives what Scipion users do to
workflows: export as a workflow JSON and load it into another project (templates), and the GUI's Duplicate.

Both carry a protocol's inputs as pointers to (protocol, output name). A pointer to the set object itself, as
``train.inputCoordinates.append(coords.outputCoordinates)`` makes, is exported as the set's id, which means
nothing in another project (the training then found no coordinates), and Duplicate failed on it. A template
loaded from a file reads a relative model file next to itself.
"""

import json
import os
import re
import uuid
from pathlib import Path

from pyworkflow.object import Pointer
from pyworkflow.tests import BaseTest, setupTestProject

from deepict_scipion.headless import create_project
from deepict_scipion.protocols import ProtDeepictTrain3D
from deepict_scipion.tests.test_protocols_3d import PUBLISHED, TINY_TRAINING, VOXEL, importPhantoms

ROOT = Path(__file__).resolve().parents[2]
#: A set object appended to a MultiPointerParam (a direct pointer) instead of Pointer(protocol, extended=...).
DIRECT_APPEND = re.compile(r"\.input\w+\.append\((?!Pointer\()")


class TestWorkflowPointers(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        importPhantoms(cls, 2)
        cls.tomos, cls.coords = cls.importTomos, cls.importCoords

    def _readmeTraining(self):
        """Train 3D on the imported coordinates, as the README's project script builds it."""
        train = self.proj.newProtocol(ProtDeepictTrain3D, inputTomograms=self.tomos.Tomograms, classNames="ribosome",
                                      particleRadii="100", numberOfThreads=1, **TINY_TRAINING)
        train.inputCoordinates.append(Pointer(self.coords, extended="outputCoordinates"))
        self.proj.saveProtocol(train)
        self.proj.getRunsGraph(refresh=True)  # the graph that export and copy follow, with the training in it
        return train

    def test_an_exported_workflow_runs_in_another_project(self):
        train = self._readmeTraining()
        exported = json.loads(self.proj.getProtocolsJson([self.tomos, self.coords, train]))
        self.assertEqual([p["inputCoordinates"] for p in exported if "inputCoordinates" in p],
                         [[f"{self.coords.getObjId()}.outputCoordinates"]])
        other = create_project(f"workflow_{uuid.uuid4().hex[:8]}")
        cwd = os.getcwd()
        os.chdir(other.path)  # Scipion runs protocols from the project folder
        self.addCleanup(os.chdir, cwd)
        other.loadProtocols(jsonStr=json.dumps(exported))
        runs = [other.getProtocol(r.getObjId()) for r in other.getRuns()]
        self.assertEqual([r.getClassName() for r in runs], ["ProtImportTomograms", "ProtImportCoordinates3D",
                                                            "ProtDeepictTrain3D"])
        for protocol in runs:
            self.assertEqual(protocol.validate() if protocol.getClassName() == "ProtDeepictTrain3D" else [], [])
            other.launchProtocol(protocol, wait=True)
            protocol = other.getProtocol(protocol.getObjId())
            self.assertTrue(protocol.isFinished(), f"{protocol.getRunName()}: {protocol.getErrorMessage()}")
        self.assertTrue(os.path.exists(os.path.join(other.path, protocol.deepictModel.getFileName())))

    def test_duplicating_coordinates_and_training_points_the_copy_to_the_copied_coordinates(self):
        """The GUI's Duplicate of the two (Project.copyProtocol of the selection)."""
        train = self._readmeTraining()
        before = {r.getObjId() for r in self.proj.getRuns(refresh=True)}
        self.proj.copyProtocol([self.coords, train])  # returns nothing for a list
        copies = [r for r in self.proj.getRuns(refresh=True) if r.getObjId() not in before]
        copiedCoords, copiedTrain = sorted(copies, key=lambda p: p.getClassName() == "ProtDeepictTrain3D")
        self.assertEqual([(p.getObjValue().getObjId(), p.getExtended()) for p in copiedTrain.inputCoordinates],
                         [(copiedCoords.getObjId(), "outputCoordinates")])

    def test_readme_and_demo_point_to_outputs_as_the_gui_does(self):
        for path in (ROOT / "README.md", ROOT / "deepict_scipion" / "demo.py",
                     ROOT / "deepict_scipion" / "headless.py"):
            lines = [line.strip() for line in path.read_text().splitlines() if DIRECT_APPEND.search(line)]
            self.assertEqual(lines, [], f"{path.name}: append Pointer(protocol, extended='output name') instead")


class TestTemplatePaths(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)

    def test_a_relative_model_file_is_read_next_to_the_template(self):
        """pyworkflow hands import protocols the template's folder to resolve relative paths; the model
        file stayed relative to wherever the project ran, and the import did not find it."""
        folder = Path(self.proj.getTmpPath("template"))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "ribosome.pth").symlink_to(PUBLISHED)
        template = folder / "workflow.json"
        template.write_text(json.dumps([{"object.className": "ProtDeepictImportModel", "object.id": "1",
                                         "modelFile": "ribosome.pth", "voxelSize": VOXEL}]))
        self.proj.loadProtocols(str(template))
        loaded = [r for r in self.proj.getRuns(refresh=True) if r.getClassName() == "ProtDeepictImportModel"][-1]
        self.assertEqual(loaded.modelFile.get(), str((folder / "ribosome.pth").absolute()))
        self.assertEqual(loaded.validate(), [])
