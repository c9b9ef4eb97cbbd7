"""The plugin in Scipion's GUI: the protocol tree (protocols.conf) and every protocol form.

``test_protocols_conf_reaches_every_protocol`` reads protocols.conf with the reader Scipion's
project window uses (it swallows parse errors into an INFO log line, so a broken file silently
hides the plugin). The ``gui`` test (``pytest -m gui``) starts its own Xvfb, builds a small real
project (imported tomograms and coordinates, a trained network, picks), opens it in pyworkflow's
ProjectWindow in a subprocess (this file run as a script), opens every form of the plugin the way
the protocol tree does, at the normal and the advanced expert level, and saves a PNG of the project
window and of every tab of every form into ``$SCIPION_TESTS_OUTPUT/deepict_gui`` (printed). A second ``gui``
test opens Scipion's own (Qt) viewer of a set of tomogram masks, which needs the X libraries gui-deps.sh installs.
Without Xvfb the test is skipped, unless CI=true: then it fails, because CI must run it.
"""

import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from pyworkflow.protocol import Protocol

import deepict_scipion.protocols as plugin_protocols
from deepict_scipion.headless import TOMOGRAPHY_VIEW as VIEW, create_project
DEEPICT_SECTION = "DeePiCt"
#: The GUI project's picks: at the model's threshold, and at 0, where one cluster fills each tomogram.
PICK, FILLING_PICK = "pick ribosomes", "pick ribosomes, threshold 0"
#: The GUI project's ensemble of its two ribosome networks.
ENSEMBLE = "combine the ribosome networks"
#: Where a structural biologist looks for a DeePiCt protocol besides the DeePiCt section.
EXPECTED_PLACES = {("Particles", "Picking"): {"ProtDeepictPick"},
                   ("Tomograms", "Segmentation"): {"ProtDeepictSegment2D", "ProtDeepictSegment3D"}}
SCREEN = "1600x1200x24"


def plugin_protocol_classes():
    """Every protocol class the plugin exports (what Scipion discovers)."""
    return {name: cls for name, cls in vars(plugin_protocols).items()
            if inspect.isclass(cls) and issubclass(cls, Protocol)}


def visible_protocols(node, path=()):
    """{(section, ..., group): {protocol class name: entry text}} of the visible protocol entries under a node."""
    found = {}
    for child in node.childs:
        if not child.visible:
            continue
        if child.tag == "protocol":
            found.setdefault(path, {})[child.value] = child.text
        else:
            for key, values in visible_protocols(child, path + (child.text,)).items():
                found.setdefault(key, {}).update(values)
    return found


def test_every_viewer_has_a_name_for_the_right_click_menu():
    """Without _name the menu shows the class name ("DeepictPicksViewer")."""
    import deepict_scipion.viewers as plugin_viewers
    from pyworkflow.viewer import Viewer
    viewers = [v for v in vars(plugin_viewers).values() if inspect.isclass(v) and issubclass(v, Viewer)]
    assert viewers and all(v.getName() != v.__name__ and v.getName().startswith("DeePiCt") for v in viewers)


def test_protocols_conf_reaches_every_protocol():
    import pyworkflow as pw
    from pyworkflow.gui.project.viewprotocols_extra import ProtocolTreeConfig
    views = ProtocolTreeConfig.load(pw.Config.getDomain(), os.path.join(pw.Config.SCIPION_LOCAL_CONFIG,
                                                                        pw.Config.SCIPION_PROTOCOLS))
    assert VIEW in views, f"no '{VIEW}' view; views: {sorted(views)}"
    places = visible_protocols(views[VIEW])
    reachable = set().union(*places.values())
    missing = set(plugin_protocol_classes()) - reachable
    assert not missing, f"protocols missing from the {VIEW} view's tree: {sorted(missing)}"
    assert set(places.get((DEEPICT_SECTION,), {})) >= set(plugin_protocol_classes())
    for place, expected in EXPECTED_PLACES.items():
        assert set(places.get(place, {})) >= expected, f"{' > '.join(place)} lacks {expected}"
    # In the DeePiCt section each entry is its protocol's own label (the section names the plugin); elsewhere
    # "default": Scipion's "DeePiCt - label", beside the other plugins' entries.
    for place, entries in places.items():
        for name, text in entries.items():
            if name in plugin_protocol_classes():
                expected = plugin_protocol_classes()[name]._label if place == (DEEPICT_SECTION,) else "default"
                assert text == expected, f"{' > '.join(place)}: {name} reads {text!r}, not {expected!r}"


#: Sections pyworkflow draws itself (the run header), not as tabs of the form.
HEADER_SECTIONS = ("General", "Parallelization")
#: protocol_export.py is owned by the export chain; it still calls addParallelSection without binThreads.
TRAINING_PROTOCOLS = {"ProtDeepictTrain2D", "ProtDeepictTrain3D"}


def _unexplainedParams(protocol):
    """Names of the form's parameters (outside the run header) without help text."""
    from pyworkflow.protocol.params import Group
    missing = []
    for section in protocol.iterDefinitionSections():
        if section.getLabel() in HEADER_SECTIONS:
            continue
        for name, param in section.iterParams():
            if isinstance(param, Group):
                missing += [n for n, p in param.iterParams() if not p.help.get()]
            elif not param.help.get():
                missing.append(name)  # a Line's own help covers its fields
    return missing


@pytest.mark.parametrize("name", sorted(plugin_protocol_classes()))
def test_every_form_starts_with_input_and_explains_every_parameter(name):
    protocol = plugin_protocol_classes()[name]()
    sections = [s.getLabel() for s in protocol.iterDefinitionSections() if s.getLabel() not in HEADER_SECTIONS]
    assert sections[0] == "Input", sections
    assert not _unexplainedParams(protocol), f"{name}: parameters without help: {_unexplainedParams(protocol)}"


#: Command-line options a form's help may name: those of other programs the user runs on an export.
OTHER_PROGRAMS_OPTIONS = {"--coords_angpix"}  # WarpTools ts_export_particles


@pytest.mark.parametrize("name", sorted(plugin_protocol_classes()))
def test_no_form_help_speaks_of_command_line_options(name):
    """The engine's help named '--radius', '--equalize auto', '--probability-map': nothing a form user can set."""
    protocol = plugin_protocol_classes()[name]()
    flags = {(param, flag) for param, definition in protocol._definition.iterAllParams()
             for flag in re.findall(r"--[a-z][a-z_-]*", definition.getHelp() or "")}
    assert not {(param, flag) for param, flag in flags if flag not in OTHER_PROGRAMS_OPTIONS}


#: The parameters of the header sections that the form draws (the thread counts of Parallelization, the run's
#: name and mode); any other parameter placed there would be invisible in the GUI.
HEADER_PARAMS = {"runName", "runMode", "hostName", "numberOfThreads", "numberOfMpi", "binThreads"}


@pytest.mark.parametrize("name", sorted(plugin_protocol_classes()))
def test_no_parameter_hides_in_the_run_header(name):
    protocol = plugin_protocol_classes()[name]()
    hidden = [param for section in protocol.iterDefinitionSections() if section.getLabel() in HEADER_SECTIONS
              for param, _ in section.iterParams() if param not in HEADER_PARAMS]
    assert not hidden, f"{name}: parameters the form does not draw: {hidden}"


@pytest.mark.parametrize("name", sorted(plugin_protocol_classes()))
def test_compute_header_has_the_threads_pyworkflow_reads(name):
    """pyworkflow logs and submits STEPS_PARALLEL protocols with ``binThreads``; without it the run log says
    "Cannot get information about MPI/threads (... has no attribute 'binThreads')". Training protocols
    (serial) offer ``numberOfThreads``. 0, the default, lets the engine use every usable core."""
    from pyworkflow.protocol.constants import STEPS_PARALLEL
    from pyworkflow.protocol.params import BIN_THREADS_PARAM
    protocol = plugin_protocol_classes()[name]()
    if protocol.stepsExecutionMode == STEPS_PARALLEL:
        threads = BIN_THREADS_PARAM
    elif name in TRAINING_PROTOCOLS:
        threads = "numberOfThreads"
    else:
        return  # a cheap serial protocol (import model): nothing to tune
    assert protocol._definition.getParam(threads).help.get()
    assert protocol.getBinThreads() == 0 and protocol._engineThreads() == 0


# ------------------------------------------- the GUI test -------------------------------------------

def _needGuiTools():
    missing = [tool for tool in ("Xvfb", "import") if shutil.which(tool) is None]
    if missing:
        message = f"{', '.join(missing)} not installed (run scripts/gui-deps.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the GUI test: {message}")
        pytest.skip(message)


class VirtualDisplay:
    """An Xvfb server on a free display number (Xvfb picks it and writes it to a pipe)."""

    def __init__(self, screen=SCREEN):
        read, write = os.pipe()
        self.process = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", screen, "-nolisten", "tcp"],
                                        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read) as handle:
            number = handle.readline().strip()
        if not number:
            self.process.kill()
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def gui_output():
    folder = os.path.join(os.environ.get("SCIPION_TESTS_OUTPUT") or os.path.abspath("."), "deepict_gui")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    print(f"\nGUI screenshots: {folder}")
    return folder


def build_small_project():
    """A real project like the demo's, small: imported tomograms and coordinates, a tiny network, picks."""
    from pyworkflow.project import Manager
    from tomo.protocols import ProtImportCoordinates3D, ProtImportTomograms

    from deepict_scipion.protocols import ProtDeepictEnsemble, ProtDeepictPick, ProtDeepictTrain3D
    from deepict_scipion.tests.test_protocols_3d import TINY_TRAINING, VOXEL, writeTomograms

    manager = Manager()
    name = "deepict_gui"
    if manager.hasProject(name):
        manager.deleteProject(name)
    project = create_project(name)  # opens in the Tomography view, as a user's project made by our helper
    cwd = os.getcwd()
    os.chdir(project.path)
    try:
        data = os.path.abspath(project.getTmpPath("data"))
        writeTomograms(data, 2)

        def run(protocol, label):
            protocol.setObjLabel(label)  # the box's name in the runs graph (newProtocol does not keep objLabel)
            project.launchProtocol(protocol, wait=True)
            assert protocol.isFinished(), f"{protocol.getRunName()} failed: {protocol.getErrorMessage()}"
            return protocol

        tomograms = run(project.newProtocol(ProtImportTomograms, filesPath=data, filesPattern="tomo*.mrc",
                                            samplingRate=VOXEL), "tomograms")
        coordinates = run(project.newProtocol(ProtImportCoordinates3D, filesPath=data, filesPattern="tomo*.txt",
                                              boxSize=24, importTomograms=tomograms.Tomograms), "ribosome annotations")
        trainings = []
        for seed in (0, 1):
            training = project.newProtocol(ProtDeepictTrain3D, inputTomograms=tomograms.Tomograms,
                                           classNames="ribosome", particleRadii="100", seed=seed, **TINY_TRAINING)
            training.inputCoordinates.append(coordinates.outputCoordinates)
            trainings.append(run(training, f"train ribosome network, seed {seed}"))
        ensemble = project.newProtocol(ProtDeepictEnsemble, calibrate=False)
        for training in trainings:
            ensemble.inputModels.append(training.deepictModel)
        run(ensemble, ENSEMBLE)
        training = trainings[0]
        # The tiny training's map joins 14-17 % of a tomogram into one cluster at its threshold 0.5 (the pick warns):
        # 0.7 separates particles (no warning from 0.6 up). At 0 one cluster fills each tomogram.
        for label, threshold in ((PICK, 0.7), (FILLING_PICK, 0.0)):
            run(project.newProtocol(ProtDeepictPick, inputTomograms=tomograms.Tomograms,
                                    inputModel=training.deepictModel, threshold=threshold, minSize=1), label)
    finally:
        os.chdir(cwd)
    return project.path


@pytest.mark.gui
def test_project_window_and_every_form(gui_output):
    _needGuiTools()
    projectPath = build_small_project()
    display = VirtualDisplay()
    try:
        env = dict(os.environ, DISPLAY=display.display)
        result = subprocess.run([sys.executable, os.path.abspath(__file__), projectPath, gui_output], env=env,
                                capture_output=True, text=True, timeout=600)
    finally:
        display.stop()
    reportPath = os.path.join(gui_output, "report.json")
    assert result.returncode == 0 and os.path.exists(reportPath), \
        f"GUI driver failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    with open(reportPath) as handle:
        report = json.load(handle)
    menu = report["menu"]
    assert DEEPICT_SECTION in menu, f"no DeePiCt section in the protocol tree: {menu}"
    for name, cls in plugin_protocol_classes().items():
        assert cls.getClassLabel(prependPackageName=False) in menu[DEEPICT_SECTION], \
            f"{name} is not in the DeePiCt menu: {menu}"
        for section, texts in menu.items():  # elsewhere the plugin's short name, not its module's
            assert not [text for text in texts if text.startswith("deepict_scipion")], (section, texts)
    assert set(report["forms"]) == set(plugin_protocol_classes())
    for name, form in report["forms"].items():
        assert not form["errors"], f"the {name} form opened with errors: {form['errors']}"
        assert form["tabs"], f"the {name} form has no sections"
        for png in form["pngs"]:
            assert os.path.getsize(png) > 1000, png
    summaries = report["summaries"]
    assert "picked with" in summaries[PICK] and "WARNINGS" not in summaries[PICK], summaries[PICK]
    # the engine's warning, listed by Scipion (the run's box takes the warning colour: project_window.png)
    assert "WARNINGS" in summaries[FILLING_PICK], summaries[FILLING_PICK]
    assert "one cluster covers 100 % of the tomogram" in summaries[FILLING_PICK], summaries[FILLING_PICK]
    assert re.search(r"Ensemble of 2 networks: train ribosome network, seed 0 \(run \d+, seed 0\); "
                     r"train ribosome network, seed 1 \(run \d+, seed 1\)\.", summaries[ENSEMBLE]), summaries[ENSEMBLE]
    assert not report["errors"], report["errors"]
    print(f"GUI screenshots: {gui_output} ({sum(len(f['pngs']) for f in report['forms'].values()) + 1} PNGs)")


def writeMaskSet(folder):
    """A SetOfTomoMasks of one small mask, outside any project (what "Analyze results" of masks shows)."""
    import numpy as np
    from tomo.objects import SetOfTomoMasks, TomoMask

    from deepict.io import write_volume

    path = os.path.join(folder, "TS_01_mask.mrc")
    write_volume(path, np.pad(np.ones((4, 8, 8), np.int8), 4), 10.0)
    masks = SetOfTomoMasks(filename=os.path.join(folder, "masks.sqlite"))
    masks.setSamplingRate(10.0)
    mask = TomoMask(location=path)
    mask.setSamplingRate(10.0)
    mask.setTsId("TS_01")
    masks.append(mask)
    masks.write()
    return masks


@pytest.mark.gui
def test_scipions_mask_viewer_opens(gui_output, tmp_path, monkeypatch):
    """"Analyze results" of tomogram masks (ours: segment 2D/3D) opens pwem's metadata viewer, a PyQt5 program:
    without the X libraries of Qt's xcb platform plugin (scripts/gui-deps.sh) it stopped at once with "Could not
    load the Qt platform plugin "xcb"" while the Tk windows worked."""
    _needGuiTools()
    if shutil.which("xdotool") is None:
        pytest.fail("xdotool not installed (run scripts/gui-deps.sh)")
    from pwem.viewers.mdviewer import viewer as mdviewer
    from pwem.viewers.mdviewer.sqlite_dao import SCIPION_OBJECT_ID, SCIPION_PORT

    masks = writeMaskSet(str(tmp_path))
    for name in (SCIPION_PORT, SCIPION_OBJECT_ID):  # MDView sets them in os.environ: restored after the test
        monkeypatch.setenv(name, "0")
    launched = []
    with monkeypatch.context() as patch:  # the subprocess module itself: undone before Xvfb starts
        patch.setattr(mdviewer.subprocess, "Popen", lambda command, **_: launched.append(command))
        mdviewer.MDView(masks, port=1).show()  # the command the GUI runs (with its project's port)
    assert len(launched) == 1, launched
    display = VirtualDisplay()
    logPath = tmp_path / "viewer.log"
    try:
        env = dict(os.environ, DISPLAY=display.display)
        with open(logPath, "w") as log:
            viewer = subprocess.Popen(launched[0], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            window = ""
            for _ in range(120):  # up to 60 s for the window
                if viewer.poll() is not None:
                    pytest.fail(f"the mask viewer stopped ({viewer.returncode}):\n{logPath.read_text()[-3000:]}")
                window = subprocess.run(["xdotool", "search", "--name", "^Metadata: masks.sqlite"], env=env,
                                        capture_output=True, text=True).stdout.strip()
                if window:
                    break
                time.sleep(0.5)
            assert window, f"no viewer window after 60 s:\n{logPath.read_text()[-3000:]}"
            png = os.path.join(gui_output, "mask_viewer.png")
            subprocess.run(["import", "-window", "root", png], env=env, check=True)
            assert os.path.getsize(png) > 1000
        finally:
            viewer.terminate()
            viewer.wait(timeout=10)
    finally:
        display.stop()


# ------------------------------ the driver (runs in the Xvfb subprocess) ------------------------------

def _screenshot(window, path):
    """Save the screen area of a Tk toplevel as a PNG (ImageMagick's import of the root window, cropped:
    without a window manager a toplevel's own X window is not always readable)."""
    window.update()
    geometry = f"{window.winfo_width()}x{window.winfo_height()}+{window.winfo_rootx()}+{window.winfo_rooty()}"
    subprocess.run(["import", "-window", "root", "-crop", geometry, "+repage", path], check=True)
    return path


def _descendants(widget):
    for child in widget.winfo_children():
        yield child
        yield from _descendants(child)


def _treeTexts(tree):
    """{section text: [labels of everything below it]} of the sections of the protocol tree's view."""
    texts = {}
    for view in tree.get_children(""):
        tree.item(view, open=True)
        for section in tree.get_children(view):
            below, stack = [], list(tree.get_children(section))
            while stack:
                node = stack.pop(0)
                below.append(tree.item(node, "text"))
                stack.extend(tree.get_children(node))
            texts[tree.item(section, "text")] = below
    return texts


def _openSection(tree, text):
    """Unfold one section of the protocol tree (and its groups), for the screenshot."""
    for view in tree.get_children(""):
        for section in tree.get_children(view):
            if tree.item(section, "text") == text:
                stack = [section]
                while stack:
                    node = stack.pop()
                    tree.item(node, open=True)
                    stack.extend(tree.get_children(node))


def drive(projectPath, outDir):
    """Open the project window and every form of the plugin; write PNGs and report.json to outDir."""
    import logging
    from tkinter import ttk

    from pyworkflow.gui.project import ProjectWindow  # first: importing form first is circular
    from pyworkflow.gui import gui as pwgui
    from pyworkflow.gui.form import FormWindow
    from pyworkflow.protocol.params import LEVEL_ADVANCED, LEVEL_NORMAL

    errors = []

    class RecordErrors(logging.Handler):
        def emit(self, record):
            errors.append(self.format(record))

    logging.getLogger().addHandler(RecordErrors(level=logging.ERROR))
    dialogs = []
    pwgui.Window.showError = lambda self, msg, header="Error", exception=None: dialogs.append(f"{header}: {msg}")
    opened = []

    def showWithoutMainloop(self, center=True, modal=False):
        # The GUI's FormWindow.show() enters a nested mainloop; here the driver pumps the events itself.
        # Without a window manager, centring on the project window leaves forms partly off-screen.
        self.root.geometry("+0+0")
        self.root.deiconify()
        self.root.update()
        opened.append(self)

    FormWindow.show = showWithoutMainloop

    window = ProjectWindow(projectPath)
    window.root.report_callback_exception = lambda kind, value, trace: errors.append(f"{kind.__name__}: {value}")
    window.root.geometry("1600x1200+0+0")
    window.root.deiconify()  # what ProjectWindow.show() does before its mainloop
    window.root.update()
    view = window.getViewWidget()
    menu = _treeTexts(view.protTree)
    _openSection(view.protTree, DEEPICT_SECTION)
    window.root.update()
    _screenshot(window.root, os.path.join(outDir, "project_window.png"))

    summaries = {}
    for run in window.project.getRuns():  # each pick and ensemble selected as a click does: the summary panel shows it
        if run.getClassName() in ("ProtDeepictPick", "ProtDeepictEnsemble"):
            view._selectItemProtocol(run)
            window.root.update()
            summaries[run.getObjLabel()] = view.summaryText.get("1.0", "end")
            _screenshot(window.root, os.path.join(outDir, f"summary_run{run.getObjId()}.png"))

    def openForm(protocol, prefix, entry):
        """Open a protocol's form as the protocol tree does; screenshot each tab; record what went wrong."""
        before = len(errors) + len(dialogs)
        try:
            view._openProtocolForm(protocol)
            form = opened.pop()
            # a text built from the module name ("deepict_scipion compute" in the header) means nothing to a user
            entry["errors"] += [f"{prefix}: a label reads {text!r}" for text in
                                (str(w.cget("text")) for w in _descendants(form.root) if "text" in w.keys())
                                if "deepict_scipion" in text]
            notebooks = [w for w in _descendants(form.root) if isinstance(w, ttk.Notebook)]
            tabs = notebooks[-1].tabs() if notebooks else []
            labels = []
            for index, tab in enumerate(tabs):
                notebooks[-1].select(tab)
                labels.append(notebooks[-1].tab(tab, "text"))
                png = os.path.join(outDir, f"{prefix}_{index}_{labels[-1].replace(' ', '_')}.png")
                entry["pngs"].append(_screenshot(form.root, png))
            form.root.destroy()
            entry["tabs"] = entry["tabs"] or labels
        except Exception as exc:  # recorded: the test names the form that failed
            entry["errors"].append(f"{prefix}: {type(exc).__name__}: {exc}")
        entry["errors"] += (errors + dialogs)[before:]

    forms = {}
    for name, cls in sorted(plugin_protocol_classes().items()):
        entry = forms[name] = {"errors": [], "tabs": [], "pngs": []}
        for level, levelName in ((LEVEL_NORMAL, "normal"), (LEVEL_ADVANCED, "advanced")):
            protocol = window.project.newProtocol(cls)
            protocol.expertLevel.set(level)
            openForm(protocol, f"{name}_{levelName}", entry)
    for run in window.project.getRuns():  # the finished runs, with their values and inputs filled in
        if run.getClassName() in forms:
            openForm(run, f"run{run.getObjId()}_{run.getClassName()}", forms[run.getClassName()])
    report = {"menu": menu, "forms": forms, "summaries": summaries, "errors": errors}
    with open(os.path.join(outDir, "report.json"), "w") as handle:
        json.dump(report, handle, indent=1)
    window.root.destroy()


if __name__ == "__main__":
    drive(*sys.argv[1:3])
