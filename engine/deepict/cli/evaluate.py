"""``deepict evaluate``: particle precision/recall/F1/F-beta/AUPRC and voxel F1/AUPRC, printed as JSON."""

from __future__ import annotations

import argparse
import json
import math
import sys

from deepict.errors import ParameterError
from deepict.jobs import EvaluateJob
from deepict.cli.options import add_command, add_parameter

DESCRIPTION = """\
Compare predictions with ground truth and print the scores as JSON on stdout.

Particle mode (--pred with --gt): predicted and true positions (CSV x,y,z with optional score
column, or DeePiCt 20-column motl; 0-based voxels of the same tomogram; ground truth at another voxel
size, another binning, is rescaled to the picks' voxels) are matched one to one within --radius voxels
of the picks. Predictions are processed by descending score (file order when there is no
score column), each taking the nearest unmatched truth within the radius; a second pick on an
already matched particle is a false positive. Reports TP/FP/FN, precision, recall, F1 and F-beta
(beta = 4, recall-weighted: the CZII cryo-ET challenge's metric, (1+b^2)PR/(b^2 P+R); the challenge's
tolerance is half the particle radius, give it as --radius) of the whole list, per class too when
both lists have a 'class' column (each class's picks matched with that class's truth), and AUPRC
(trapezoid of precision over recall over the score threshold, starting at recall 0) with the best F1
and its score threshold, and the precision-recall trade-off: for recalls from 0.5 to 0.95, the
score threshold with the best precision reaching it (keep picks scoring at least that; pick
with a lower --threshold to reach recalls beyond the curve).

Voxel mode: --pred-mask with --gt-mask gives the voxel F1 (Dice) of two binary masks (nonzero =
foreground); --probability-map with --gt-mask gives the voxel AUPRC of a probability map, computed
from --bins histogram bins slab by slab (works on tomograms larger than memory). All volumes must
have the same shape.

Modes can be combined in one call. When nothing is to be found and nothing is predicted
(empty lists, empty masks) the scores are 1; otherwise 0/0 counts as 0.
"""

EPILOG = """\
examples:
  deepict evaluate --pred picks.csv --gt truth.csv --radius 10
  deepict evaluate --pred picks.csv --gt truth.csv --json scores.json --curve pr_curve.csv
  deepict evaluate --pred-mask membranes.mrc --gt-mask membranes_gt.mrc
  deepict evaluate --probability-map probs.mrc --gt-mask membranes_gt.mrc --bins 2000

JSON keys: "particles" {radius, n_pred, n_true, tp, fp, fn, precision, recall, f1, fbeta, beta, auprc, max_f1,
max_f1_threshold, max_f1_n_kept, trade_off [{recall_at_least, threshold, n_kept, precision, recall, f1}],
ranking[, classes {name: {n_pred, n_true, tp, fp, fn, precision, recall, f1, fbeta, beta}}]}; "voxels" {dice / f1, tp, fp, fn, tn, precision, recall}
and/or {auprc, max_f1, max_f1_threshold, bins}. Exit status 2 on bad input.
"""


def register(subparsers) -> None:
    parser = add_command(
        subparsers, EvaluateJob, run,
        help="precision / recall / F1 / F-beta / AUPRC of picks, voxel F1 and AUPRC of masks",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    particles = parser.add_argument_group("particle picking")
    add_parameter(particles, EvaluateJob, "pred", "--pred", metavar="CSV")
    add_parameter(particles, EvaluateJob, "gt", "--gt", metavar="CSV")
    add_parameter(particles, EvaluateJob, "radius", "--radius", type=float, metavar="VOXELS")
    add_parameter(particles, EvaluateJob, "curve", "--curve", metavar="CSV")
    voxels = parser.add_argument_group("segmentation (voxels)")
    add_parameter(voxels, EvaluateJob, "pred_mask", "--pred-mask", metavar="MRC")
    add_parameter(voxels, EvaluateJob, "probability_map", "--probability-map", metavar="MRC")
    add_parameter(voxels, EvaluateJob, "gt_mask", "--gt-mask", metavar="MRC")
    add_parameter(voxels, EvaluateJob, "bins", "--bins", type=int)
    add_parameter(parser, EvaluateJob, "json", "--json", metavar="PATH")


def _clean(value):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run(job: EvaluateJob) -> int:
    from deepict.evaluate.files import evaluate_particles, evaluate_voxels
    from deepict.io import atomic_path
    from deepict.io.outputs import claimed_outputs
    particle_mode = bool(job.pred or job.gt)
    voxel_mode = bool(job.pred_mask or job.probability_map or job.gt_mask)
    if not particle_mode and not voxel_mode:
        raise ParameterError("Nothing to evaluate: give --pred and --gt, and/or --gt-mask with "
                             "--pred-mask or --probability-map.")
    if particle_mode and not (job.pred and job.gt):
        masks = " (--pred-mask and --probability-map are scored against --gt-mask)" if voxel_mode else ""
        raise ParameterError(f"Particle evaluation needs both --pred and --gt{masks}.")
    if voxel_mode and not (job.gt_mask and (job.pred_mask or job.probability_map)):
        raise ParameterError("Voxel evaluation needs --gt-mask together with --pred-mask and/or --probability-map.")
    if job.curve and not particle_mode:
        raise ParameterError("--curve writes the particle PR curve; give --pred and --gt too.")
    output = {}
    with claimed_outputs(("--curve", job.curve), ("--json", job.json), job=job):
        if particle_mode:
            output["particles"] = evaluate_particles(job.pred, job.gt, job.radius, job.curve,
                                                     log=lambda line: print(line, file=sys.stderr))
        if voxel_mode:
            output["voxels"] = evaluate_voxels(job.pred_mask, job.probability_map, job.gt_mask, job.bins)
        text = json.dumps(_clean(output), indent=2)
        if job.json:
            with atomic_path(job.json) as tmp:
                tmp.write_text(text + "\n")
    print(text)
    return 0
