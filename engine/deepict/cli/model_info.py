"""``deepict model-info``: what a model file holds, as JSON (used by the Scipion protocols)."""

from __future__ import annotations

import json

from deepict.jobs import ModelInfoJob
from deepict.cli.options import add_command, add_parameter


def register(subparsers) -> None:
    parser = add_command(
        subparsers, ModelInfoJob, run_model_info,
        help="describe a model file (kind, classes, voxel size, history) as JSON",
        description="Print the description stored in a deepict_scipion model file as JSON: kind (2d/3d), "
                    "class names, voxel size (Å), sphere radius per class (voxels and Å), suggested "
                    "post-processing (and whether it was calibrated), training history and epochs, whether its "
                    "training finished (false: rerun it with --resume), whether a "
                    "reference spectrum is stored, where its training kept validation slabs, its source, and an "
                    "ensemble's members.")
    add_parameter(parser, ModelInfoJob, "model", "--model")
    add_parameter(parser, ModelInfoJob, "json", "--json", metavar="FILE")


def describe(model_path) -> dict:
    """A JSON-ready description of a model file."""
    # torch is imported only when the command runs
    from deepict.nn.model_files import (ENSEMBLE_MEMBERS, POSTPROCESS_CALIBRATION, incomplete_training_warning,
                                         network_depth, read_model_info, validation_split)
    info = read_model_info(model_path)
    voxel = info.voxel_size or 0.0
    return {"model": str(model_path), "kind": info.kind, "classes": info.classes, "voxel_size": info.voxel_size,
            "architecture": info.architecture, "depth": network_depth(info.architecture),
            "members": info.training.get(ENSEMBLE_MEMBERS), "patch_size": info.patch_size,
            "label_kind": info.label_kind,
            "sphere_radius": info.sphere_radius,
            # rounded: 108 Å given at 13.48 Å/voxel is 8.0119 voxels, which came back as 107.99999999999999 Å
            "sphere_radius_angstrom": {c: round(r * voxel, 6) for c, r in info.sphere_radius.items()} if voxel else {},
            "postprocess": info.postprocess, "postprocess_calibrated": POSTPROCESS_CALIBRATION in info.training,
            "has_spectrum": info.spectrum is not None,
            "history": info.history, "epochs": info.training.get("epochs"),
            "complete": incomplete_training_warning(info.training) is None,
            "weight_average": info.training.get("weight_average"), "validation_split": validation_split(info.training),
            "source": info.source, "version": info.version}


def run_model_info(job: ModelInfoJob) -> int:
    from deepict.io import atomic_path
    from deepict.io.outputs import claimed_outputs
    with claimed_outputs(("--json", job.json), job=job):
        text = json.dumps(describe(job.model), indent=1)
        if job.json:
            with atomic_path(job.json) as tmp:
                tmp.write_text(text)
    print(text)
    return 0
