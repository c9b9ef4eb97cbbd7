"""``deepict ensemble``: several trained 3D models combined into one model file that averages them."""

from __future__ import annotations

import argparse
import json

from deepict.errors import ParameterError
from deepict.jobs import EnsembleJob
from deepict.cli.options import (add_command, add_device_options, add_parameter, apply_precision, apply_threads,
                                 positive_number)

EPILOG = """\
examples:
  # two FAS networks trained alike but for their seed, averaged; post-processing calibrated on the
  # validation slabs of their training tomograms
  deepict train3d --tomograms A.mrc B.mrc C.mrc --coords A.csv B.csv C.csv --class-name fas --radius 8 --out fas_s0.pt
  deepict train3d --tomograms A.mrc B.mrc C.mrc --coords A.csv B.csv C.csv --class-name fas --radius 8 --seed 7 \\
                  --out fas_s7.pt
  deepict ensemble --models fas_s0.pt fas_s7.pt --out fas_ensemble.pt \\
                   --tomograms A.mrc B.mrc C.mrc --coords A.csv B.csv C.csv
  deepict pick --model fas_ensemble.pt --tomogram T.mrc --out fas_picks.csv

Each member predicts every box and their probabilities are averaged: picking takes as long as with all
members one after the other. Without --tomograms the ensemble takes the members' median threshold, minimum
cluster size and duplicate distance.
"""


def register(subparsers) -> None:
    parser = add_command(
        subparsers, EnsembleJob, run_ensemble,
        help="combine trained 3D models into one that averages their probabilities",
        description="Write one model file holding two or more trained 3D models (the same classes, voxel size "
                    "and reference spectrum) that 'deepict pick' and 'segment3d' use as any model: the "
                    "probability of each voxel is the mean of the members'. Networks trained with different "
                    "seeds (or sizes) err in different places, so their mean separates particles from look-alikes "
                    "better than either.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_parameter(parser, EnsembleJob, "models", "--models", nargs="+", metavar="MODEL")
    add_parameter(parser, EnsembleJob, "out", "--out")
    calibration = parser.add_argument_group("calibrating the ensemble's post-processing (optional)")
    add_parameter(calibration, EnsembleJob, "tomograms", "--tomograms", nargs="+", metavar="MRC")
    add_parameter(calibration, EnsembleJob, "coords", "--coords", nargs="+", metavar="CSV")
    add_parameter(calibration, EnsembleJob, "voxel_size", "--voxel-size", type=positive_number)
    add_device_options(parser, EnsembleJob)


def run_ensemble(job: EnsembleJob) -> int:
    from deepict.io.outputs import claimed_outputs
    from deepict.nn.devices import select_device
    from deepict.nn.ensemble import combine_models
    from deepict.nn.model_files import save_model
    if bool(job.tomograms) != bool(job.coords):
        raise ParameterError("calibrating the ensemble needs both --tomograms and --coords (one CSV per tomogram), "
                             "or neither")
    apply_precision(job)
    with claimed_outputs(("--out", job.out), job=job):
        network, info = combine_models(job.models)
        print(f"deepict ensemble: {len(job.models)} members; their median post-processing: threshold "
              f"{info.postprocess['threshold']:g}, minimum cluster size {info.postprocess['min_size']} voxels",
              flush=True)
        if job.tomograms:
            from deepict.train.recalibrate import recalibrate  # torch, scipy: only when calibrating
            apply_threads(job.threads)
            recalibrate(network, info, job.tomograms, job.coords,
                        select_device(job.device), voxel_size=job.voxel_size,
                        log=lambda text: print(text, flush=True))
        save_model(job.out, network, info)
    print(json.dumps({"model": job.out, "members": job.models, "classes": info.classes,
                      "postprocess": info.postprocess, "source": info.source}))
    return 0
