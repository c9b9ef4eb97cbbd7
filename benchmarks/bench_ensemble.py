"""Does an ensemble pay? Particle F1 of each network's probability map and of their mean.

The paper trains several networks side by side; averaging their probability maps is the cheapest
ensemble. This scores, on one tomogram, each map given and the mean of them over the calibration's
whole grid (:mod:`deepict.train.calibrate`: threshold x minimum size x duplicate distance), so the
comparison does not depend on how well any one map was calibrated::

    deepict pick --model A.pt --tomogram vpp_003.mrc --out a.csv --probability-map a.mrc   # and B.pt -> b.mrc
    .venv/bin/python benchmarks/bench_ensemble.py --truth vpp_003_fas.csv --radius 8 a.mrc b.mrc

Prints one JSON object: per map and for ``mean``, the F1 at threshold 0.5 and a one-radius duplicate
distance for minimum sizes of a quarter, a half and 0.9 of the training sphere, and ``best``: the
highest F1 of any grid point (what the best possible post-processing reaches on that map), with its
parameters. Picks match the truth within 10 voxels, one to one, as ``deepict evaluate``.
"""

import argparse
import json

import numpy as np

from deepict.io import read_coordinates, read_volume
from deepict.train.calibrate import (DUPLICATE_RADII, SPHERE_FRACTIONS, THRESHOLDS, UNCALIBRATED_THRESHOLD,
                                     candidate_grid, score_candidates)

MATCH_RADIUS = 10.0
SIZES_REPORTED = (0.25, 0.5, 0.9)


def probability(path: str) -> np.ndarray:
    data = np.asarray(read_volume(path).data, np.float32)
    return data[0] if data.ndim == 4 else data


def score(volume: np.ndarray, truth: np.ndarray, radius: float) -> dict:
    values = candidate_grid(radius)
    _, _, f1 = score_candidates([(volume, 0, truth)], MATCH_RADIUS, False, values)
    threshold, distance = THRESHOLDS.index(UNCALIBRATED_THRESHOLD), DUPLICATE_RADII.index(1.0)
    result = {f"f1_at_0.5_size{fraction:g}": round(float(f1[threshold, SPHERE_FRACTIONS.index(fraction), distance]), 3)
              for fraction in SIZES_REPORTED}
    best = np.unravel_index(np.argmax(f1), f1.shape)
    result["best"] = {"f1": round(float(f1[best]), 3), "threshold": values["threshold"][best[0]],
                      "min_size": values["min_size"][best[1]], "min_distance": values["min_distance"][best[2]]}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("maps", nargs="+",
                        help="probability maps of the same tomogram (deepict pick --probability-map)")
    parser.add_argument("--truth", required=True, help="true particle centres (CSV, voxels)")
    parser.add_argument("--radius", type=float, default=8.0, help="the training sphere's radius in voxels")
    args = parser.parse_args()
    truth = read_coordinates(args.truth).xyz
    maps = {path: probability(path) for path in args.maps}
    shapes = {path: volume.shape for path, volume in maps.items()}
    if len(set(shapes.values())) > 1:
        raise SystemExit("the maps differ in shape, so they are not of one tomogram: "
                         + ", ".join(f"{path} {shape}" for path, shape in shapes.items()))
    results = {path: score(volume, truth, args.radius) for path, volume in maps.items()}
    if len(maps) > 1:
        results["mean"] = score(sum(maps.values()) / len(maps), truth, args.radius)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
