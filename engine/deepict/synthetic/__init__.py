"""Procedural tomograms with exact ground truth, for the demo, the tests and the benchmarks.

One module per kind of scene: :mod:`deepict.synthetic.cells` makes cell-like lamellae holding
particles and compartments. The names below are the ones every caller uses.
"""

from deepict.synthetic.cells import (
    MASK_NAMES,
    PARTICLE_CLASSES,
    Phantom,
    PhantomConfig,
    make_dataset,
    make_phantom,
    missing_wedge_mask,
    particle_templates,
    write_phantom,
)

__all__ = ["MASK_NAMES", "PARTICLE_CLASSES", "Phantom", "PhantomConfig", "make_dataset", "make_phantom",
           "missing_wedge_mask", "particle_templates", "write_phantom"]
