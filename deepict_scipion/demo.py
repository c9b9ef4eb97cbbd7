"""``deepict-demo``: a whole DeePiCt project in Scipion, from nothing, on built-in synthetic data.

It writes synthetic cell-like tomograms (ribosome-like and FAS-like particles, membranes, crowding,
noise, missing wedge), then builds a Scipion project that imports them, imports the ribosome
annotations of the training tomograms, trains a 3D U-Net, picks ribosomes in a held-out tomogram
and scores the picks against its ground truth (particle F1 within 10 voxels). Every step is a real
Scipion protocol run (sqlite project, protocol subprocesses); the project can be opened in the GUI.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from .headless import scipion_environment

PROJECT = "deepict_demo"
#: A network small enough to train in a few CPU minutes; the synthetic ribosomes fit its 32³ boxes.
DEMO_NETWORK = dict(depth=2, initialFeatures=8, patchSize=32, batchSize=4)
CHILD_FLAG = "--in-scipion-environment"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="deepict-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=os.path.abspath("deepict_demo_output"),
                        help="folder for the data, the Scipion settings and the project (default: %(default)s)")
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
    if not getattr(args, CHILD_FLAG.lstrip("-").replace("-", "_")):
        # pyworkflow reads its settings when first imported: run the project in a process that has them.
        env = scipion_environment(args.workdir)
        command = [sys.executable, "-m", "deepict_scipion.demo", CHILD_FLAG] + list(argv or sys.argv[1:])
        return subprocess.call(command, env=env)
    return open_gui() if args.gui else run_project(args)


def open_gui():
    from pyworkflow.gui.project import ProjectWindow
    from pyworkflow.project import Manager
    manager = Manager()
    if not manager.hasProject(PROJECT):
        raise SystemExit(f"no demo project under {os.environ['SCIPION_USER_DATA']}: run deepict-demo first")
    ProjectWindow(manager.getProjectPath(PROJECT)).show()
    return 0


def write_data(folder, count, seed):
    """Synthetic tomograms; coordinates of the training ones as ``<name>.txt`` (x y z, 0-based voxels)."""
    import numpy as np

    from .core.io import write_volume
    from .core.synthetic import PhantomConfig, make_phantom
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

    from pyworkflow.project import Manager
    from tomo.constants import BOTTOM_LEFT_CORNER
    from tomo.protocols import ProtImportCoordinates3D, ProtImportTomograms

    from .core.metrics import match_particles
    from .protocols import ProtDeepictPick, ProtDeepictTrain3D
    logging.basicConfig(level=logging.WARNING)

    started = time.time()
    step = lambda message: print(f"[{time.time() - started:6.1f} s] {message}", flush=True)  # noqa: E731
    step("writing synthetic tomograms")
    train, test, truth = write_data(os.path.join(args.workdir, "data"), args.train_tomograms, args.seed)

    manager = Manager()
    if manager.hasProject(PROJECT):
        manager.deleteProject(PROJECT)
    project = manager.createProject(PROJECT)
    os.chdir(project.path)

    def run(protocol, label):
        step(f"running '{label}'")
        project.launchProtocol(protocol, wait=True)
        if not protocol.isFinished():
            raise SystemExit(f"'{label}' failed: {protocol.getErrorMessage()}\n"
                             f"log: {os.path.join(project.path, protocol.getLogPaths()[0])}")
        return protocol

    importTrain = run(project.newProtocol(ProtImportTomograms, objLabel="training tomograms", filesPath=train,
                                          filesPattern="*.mrc", samplingRate=13.48), "import training tomograms")
    importCoords = run(project.newProtocol(ProtImportCoordinates3D, objLabel="ribosome annotations",
                                           filesPath=train, filesPattern="*.txt", boxSize=32,
                                           importTomograms=importTrain.Tomograms), "import annotations")
    training = project.newProtocol(ProtDeepictTrain3D, objLabel="train ribosome network",
                                   inputTomograms=importTrain.Tomograms, classNames="ribosome",
                                   particleRadii="81", epochs=args.epochs, iterationsPerEpoch=args.iterations_per_epoch,
                                   seed=args.seed, **DEMO_NETWORK)
    training.inputCoordinates.append(importCoords.outputCoordinates)
    run(training, "train 3D network")
    importTest = run(project.newProtocol(ProtImportTomograms, objLabel="new tomogram", filesPath=test,
                                         filesPattern="*.mrc", samplingRate=13.48), "import a new tomogram")
    pick = run(project.newProtocol(ProtDeepictPick, objLabel="pick ribosomes", inputTomograms=importTest.Tomograms,
                                   inputModel=training.deepictModel), "pick particles")

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
