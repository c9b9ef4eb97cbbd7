"""Procedural tomograms with exact ground truth, for the demo, the tests and the benchmarks.

One module per kind of scene: :mod:`deepict.synthetic.cells` makes cell-like lamellae holding
particles and compartments; :mod:`deepict.synthetic.envelope` a nuclear envelope with
nuclear pore complexes; :mod:`deepict.synthetic.filaments` microtubule- and
actin-like filaments with exact centre lines. The names below are the ones every caller uses.
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
from deepict.synthetic.envelope import (
    ENVELOPE_MASK_NAMES,
    EnvelopeConfig,
    EnvelopeScene,
    make_envelope_dataset,
    make_envelope_scene,
    write_envelope_scene,
)
from deepict.synthetic.filaments import (
    FILAMENT_KINDS,
    FilamentScene,
    FilamentSceneConfig,
    centre_line_table,
    make_filament_scene,
    write_filament_scene,
)

__all__ = ["MASK_NAMES", "PARTICLE_CLASSES", "Phantom", "PhantomConfig", "make_dataset", "make_phantom",
           "missing_wedge_mask", "particle_templates", "write_phantom"]
__all__ += ["ENVELOPE_MASK_NAMES", "EnvelopeConfig", "EnvelopeScene", "make_envelope_dataset", "make_envelope_scene",
            "write_envelope_scene"]
__all__ += ["FILAMENT_KINDS", "FilamentScene", "FilamentSceneConfig", "centre_line_table", "make_filament_scene",
            "write_filament_scene"]
