"""``deepict-demo``: a whole DeePiCt project in Scipion, from nothing, on built-in synthetic data.

It writes synthetic cell-like tomograms (ribosome-like and FAS-like particles, membranes, crowding,
noise, missing wedge), then builds a Scipion project that imports them, imports the ribosome
annotations of the training tomograms, trains a 3D U-Net, picks ribosomes in a held-out tomogram
and scores the picks against its ground truth (particle F1 within 10 voxels). Every step is a real
Scipion protocol run (sqlite project, protocol subprocesses); the project can be opened in the GUI.
"""

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

from .headless import create_project, project_folder, scipion_environment

PROJECT = "deepict_demo"
#: A network small enough to train in a few CPU minutes; the synthetic ribosomes fit its 32³ boxes.
#: Every demo tomogram is at the model's voxel size and the training is short: no low-pass augmentation for
#: coarser tomograms (coarserSampling 1), which slows the first hundred batches of a training.
DEMO_NETWORK = dict(depth=2, initialFeatures=8, patchSize=32, batchSize=4, coarserSampling=1.0)
CHILD_FLAG = "--in-scipion-environment"
#: How often the log of the running protocol is read for new lines.
LOG_POLL_SECONDS = 1.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="deepict-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=os.path.abspath, default="deepict_demo_output",
                        help="folder for the data, the Scipion settings and the project (default: "
                             "./%(default)s); --gui opens the project of an earlier run in this folder")
    parser.add_argument("--train-tomograms", type=int, default=3, help="number of training tomograms (default 3)")
    parser.add_argument("--epochs", type=int, default=15, help="training epochs (default 15)")
    parser.add_argument("--iterations-per-epoch", type=int, default=20, help="batches per epoch (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and the training")
    parser.add_argument("--gui", action="store_true",
                        help="only open the demo project (made by an earlier run) in the Scipion GUI")
    parser.add_argument(CHILD_FLAG, action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.gui and not os.path.isfile(os.path.join(project_folder(args.workdir, PROJECT), "project.sqlite")):
        # Checked before the Scipion settings are written, so that a wrong folder stays untouched.
        print(f"deepict-demo: no demo project in {args.workdir}: run deepict-demo first, or give "
              f"the folder of an earlier run with --workdir FOLDER", file=sys.stderr)
        return 2
    if args.gui and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        print("deepict-demo: --gui opens a window and needs a display, but DISPLAY is not set: run it in a desktop "
              "session, over 'ssh -X', or under 'xvfb-run'", file=sys.stderr)
        return 2
    child = getattr(args, CHILD_FLAG.lstrip("-").replace("-", "_"))
    try:
        if not child:
            # pyworkflow reads its settings when first imported: run the project in a process that has them.
            env = scipion_environment(args.workdir)
            command = [sys.executable, "-m", "deepict_scipion.demo", CHILD_FLAG] + list(argv or sys.argv[1:])
            return subprocess.call(command, env=env)
        return open_gui() if args.gui else run_project(args)
    except KeyboardInterrupt:
        if not child:  # the child (same process group) got the Ctrl-C too and leaves the line to its parent
            print("deepict-demo: interrupted; run it again to start over (it rebuilds the project)", file=sys.stderr)
        return 128 + signal.SIGINT


def open_gui():
    from pyworkflow.gui.project import ProjectWindow
    from pyworkflow.project import Manager
    ProjectWindow(Manager().getProjectPath(PROJECT)).show()
    return 0


@contextlib.contextmanager
def streamed_log(path, name):
    """While the block runs, print each new line of the log file ``path`` as ``  [name] line``.

    A protocol runs in its own process and writes its progress (the engine's epoch lines) only to
    its log, so the terminal would otherwise stay silent for minutes.
    """
    done = threading.Event()

    def follow():
        position, partial = 0, ""
        while True:
            finished = done.is_set()  # read before the file, so the last lines are not missed
            if os.path.exists(path):
                with open(path, encoding="utf-8", errors="replace") as handle:
                    handle.seek(position)
                    text = handle.read()
                    position = handle.tell()
                *lines, partial = (partial + text).split("\n")
                for line in lines:
                    print(f"  [{name}] {line}", flush=True)
            if finished:
                if partial:
                    print(f"  [{name}] {partial}", flush=True)
                return
            done.wait(LOG_POLL_SECONDS)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    try:
        yield
    finally:
        done.set()
        follower.join()


def write_data(folder, count, seed):
    """Synthetic tomograms; coordinates of the training ones as ``<name>.txt`` (x y z, 0-based voxels)."""
    import numpy as np

    from deepict.io import write_volume
    from deepict.synthetic import PhantomConfig, make_phantom
    train, test = os.path.join(folder, "train"), os.path.join(folder, "test")
    os.makedirs(train, exist_ok=True)
    os.makedirs(test, exist_ok=True)
    truth = None
    for index in range(count + 1):
        phantom = make_phantom(PhantomConfig(seed=seed * 100 + index))
        target = test if index == count else train
        name = f"cell{index:02d}"
        write_volume(os.path.join(target, f"{name}.mrc"), phantom.tomogram, phantom.voxel_size)
        np.savetxt(os.path.join(target, f"{name}.txt"), phantom.coords["ribosome"], fmt="%.3f")
        if index == count:
            truth = phantom.coords["ribosome"]
    return train, test, truth


def run_project(args):
    import logging

    from pyworkflow.object import Pointer
    from pyworkflow.project import Manager
    from tomo.constants import BOTTOM_LEFT_CORNER
    from tomo.protocols import ProtImportCoordinates3D, ProtImportTomograms

    from deepict.evaluate.metrics import match_particles
    from .protocols import ProtDeepictPick, ProtDeepictTrain3D
    logging.basicConfig(level=logging.WARNING)

    started = time.time()
    step = lambda message: print(f"[{time.time() - started:6.1f} s] {message}", flush=True)  # noqa: E731
    step("writing synthetic tomograms")
    train, test, truth = write_data(os.path.join(args.workdir, "data"), args.train_tomograms, args.seed)

    manager = Manager()
    if manager.hasProject(PROJECT):
        manager.deleteProject(PROJECT)
    project = create_project(PROJECT)
    os.chdir(project.path)

    def run(protocol, label):
        """Run ``protocol`` under ``label`` (its name in the project's graph), showing its log as it grows."""
        # newProtocol(objLabel=...) does not keep the label (pyworkflow 3.11's Step drops it): set it here.
        protocol.setObjLabel(label)
        project.saveProtocol(protocol)  # gives the protocol its folder, hence its log's path
        step(f"running '{label}'")
        log = os.path.join(project.path, protocol.getStdoutLog())
        with streamed_log(log, label):
            project.launchProtocol(protocol, wait=True)
        if not protocol.isFinished():
            raise SystemExit(f"'{label}' failed: {protocol.getErrorMessage()}\nlog: {log}")
        return protocol

    importTrain = run(project.newProtocol(ProtImportTomograms, filesPath=train, filesPattern="*.mrc",
                                          samplingRate=13.48), "import training tomograms")
    importCoords = run(project.newProtocol(ProtImportCoordinates3D, filesPath=train, filesPattern="*.txt", boxSize=32,
                                           importTomograms=importTrain.Tomograms), "import ribosome annotations")
    training = project.newProtocol(ProtDeepictTrain3D, inputTomograms=importTrain.Tomograms, classNames="ribosome",
                                   particleRadii="81", epochs=args.epochs, iterationsPerEpoch=args.iterations_per_epoch,
                                   seed=args.seed, **DEMO_NETWORK)
    # a pointer to the protocol's output, as the GUI makes: a workflow with it exports and duplicates
    training.inputCoordinates.append(Pointer(importCoords, extended="outputCoordinates"))
    run(training, "train ribosome network")
    importTest = run(project.newProtocol(ProtImportTomograms, filesPath=test, filesPattern="*.mrc",
                                         samplingRate=13.48), "import new tomogram")
    pick = run(project.newProtocol(ProtDeepictPick, inputTomograms=importTest.Tomograms,
                                   inputModel=training.deepictModel), "pick ribosomes")

    coordinates = getattr(pick, pick.OUTPUT_PREFIX)
    tomo = [t.clone() for t in coordinates.getPrecedents().iterItems()][0]
    picks = [c.getPosition(BOTTOM_LEFT_CORNER) for c in coordinates.iterCoordinates(volume=tomo)]
    scores = [c.getScore() for c in coordinates.iterCoordinates(volume=tomo)]
    result = match_particles(picks, truth, radius=10.0, scores=scores)
    summary = {"project": project.path, "picks": len(picks), "true_particles": len(truth),
               "precision": round(result.precision, 3), "recall": round(result.recall, 3),
               "f1": round(result.f1, 3), "seconds": round(time.time() - started, 1),
               "model": os.path.join(project.path, training.deepictModel.getFileName()),
               "coordinates": os.path.join(project.path, coordinates.getFileName())}
    step("done")
    print(json.dumps(summary, indent=1))
    print(f"\nRibosome picking on the held-out tomogram: F1 = {result.f1:.3f} "
          f"(precision {result.precision:.3f}, recall {result.recall:.3f}, 10-voxel tolerance).")
    print(f"Open the project in the Scipion GUI with:  deepict-demo --workdir {args.workdir} --gui "
          f"(or 'scipion3 project {PROJECT}' with SCIPION_USER_DATA={os.environ['SCIPION_USER_DATA']}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
