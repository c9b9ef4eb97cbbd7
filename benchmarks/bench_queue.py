"""Picking the six development tomograms through Scipion's queue to the local SLURM vs locally.

A headless Scipion project with the README's hosts.conf (SLURM, see scripts/slurm-up.sh) imports the six
tomograms of ../shared/data/dev and their ribosome coordinates, trains a small 3D network locally (about 3 minutes), then
picks the six tomograms three ways and prints each wall time (launch to finished protocol) and whether
the picks are identical:

- local, one process at a time with 1 CPU thread;
- local, one process at a time with every core (2 threads here);
- local, two tomograms at a time (Scipion threads 3), 1 thread each;
- queued, one SLURM job per tomogram with 1 CPU each, 2 jobs at a time (Scipion threads 3).

Run as root with SLURM up, one benchmark at a time:
    mkdir /tmp/bench.lock && .venv/bin/python benchmarks/bench_queue.py; rmdir /tmp/bench.lock
"""

import argparse
import csv
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEV = REPO.parent / "shared" / "data" / "dev"
#: The demo's network and training length: enough to find ribosomes, so that "identical" compares real picks.
EPOCHS = 15
THRESHOLD = 0.5
TOMOGRAMS = ["vpp_000", "vpp_001", "vpp_002", "vpp_003", "defocus_000", "defocus_001"]


def readme_hosts_conf():
    text = Path(os.environ.get("DEEPICT_CLUSTER_README") or REPO / "README.md").read_text()
    match = re.search(r"<!-- deepict hosts.conf for SLURM.*?-->\s*```ini\n(.*?)```", text, re.DOTALL)
    if not match:
        sys.exit("no hosts.conf block for SLURM in the README (set DEEPICT_CLUSTER_README to a file with it)")
    return match.group(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()  # no options: --help says what it runs (about 10 minutes, SLURM up) before it runs
    if not all((DEV / f"{name}.mrc").is_file() for name in TOMOGRAMS):
        print(json.dumps({"skipped": f"the development tomograms are not in {DEV}"}))
        return
    root = tempfile.mkdtemp(prefix="deepict-bench-queue-")
    from deepict_scipion.headless import scipion_environment
    os.environ.update(scipion_environment(root))
    with open(os.environ["SCIPION_HOSTS"], "w") as handle:
        handle.write(readme_hosts_conf())
    data = Path(root) / "data"
    data.mkdir()
    for name in TOMOGRAMS:
        (data / f"{name}.mrc").symlink_to(DEV / f"{name}.mrc")
        with open(DEV / f"{name}_ribosome.csv") as source, open(data / f"{name}.txt", "w") as target:
            for row in csv.DictReader(source):
                target.write(f"{row['x']} {row['y']} {row['z']}\n")

    import numpy as np
    from pyworkflow.project import Manager
    from tomo.protocols import ProtImportCoordinates3D, ProtImportTomograms

    from deepict_scipion.convert import coordinatesByKey
    from deepict_scipion.protocols import ProtDeepictPick, ProtDeepictTrain3D

    project = Manager().createProject("bench_queue")
    os.chdir(project.path)  # pyworkflow's paths are relative to the project

    def run(protocol):
        start = time.perf_counter()
        project.launchProtocol(protocol, wait=True)
        protocol = project.getProtocol(protocol.getObjId())
        if not protocol.isFinished():
            sys.exit(f"{protocol.getRunName()} failed: {protocol.getErrorMessage()}")
        return protocol, time.perf_counter() - start

    tomos, _ = run(project.newProtocol(ProtImportTomograms, filesPath=str(data), filesPattern="*.mrc",
                                       samplingRate=13.48))
    coords, _ = run(project.newProtocol(ProtImportCoordinates3D, filesPath=str(data), filesPattern="*.txt",
                                        importTomograms=tomos.Tomograms, boxSize=24))
    train = project.newProtocol(ProtDeepictTrain3D, inputTomograms=tomos.Tomograms, classNames="ribosome",
                                particleRadii="100", depth=2, initialFeatures=8, epochs=EPOCHS, iterationsPerEpoch=20,
                                batchSize=4, patchSize=32, coarserSampling=1.0, valFraction=0.0,
                                numberOfThreads=2)
    train.inputCoordinates.append(coords.outputCoordinates)
    train, seconds = run(train)
    print(f"small model trained locally in {seconds:.0f} s ({EPOCHS} x 20 batches of 4)", flush=True)

    def pick(threads, binThreads, queue=False):
        protocol = project.newProtocol(ProtDeepictPick, inputTomograms=tomos.Tomograms, inputModel=train.deepictModel,
                                       threshold=THRESHOLD, numberOfThreads=threads, binThreads=binThreads)
        if queue:
            protocol._useQueue.set(True)
            protocol.setQueueParams(("cpu", {"JOB_MEMORY": "auto", "JOB_TIME": "60", "GPU_COUNT": "0",
                                             "QUEUE_FOR_JOBS": "Y"}))
        protocol, seconds = run(protocol)
        picks = coordinatesByKey(getattr(protocol, protocol.OUTPUT_PREFIX))
        return {key: np.array(sorted(map(tuple, np.round(value, 3)))) for key, value in picks.items()}, seconds

    results = {"local, 1 process x 1 thread": pick(1, 1), "local, 1 process x 2 threads": pick(1, 2),
               "local, 2 parallel steps x 1 thread": pick(3, 1),
               "SLURM, 2 jobs x 1 CPU at a time": pick(3, 1, queue=True)}
    reference = results["local, 1 process x 1 thread"][0]
    report = {}
    for label, (picks, seconds) in results.items():
        same = sorted(picks) == sorted(reference) and all(np.array_equal(picks[k], reference[k]) for k in reference)
        report[label] = {"seconds": round(seconds, 1), "tomograms": len(picks),
                         "picks": int(sum(len(value) for value in picks.values())), "identical_to_local": bool(same)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
