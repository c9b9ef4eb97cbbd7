"""Filaments traced along their centre lines and sampled as oriented particles (helical/filament averaging).

:mod:`.options` (the parameters, lengths in Å; plain Python), :mod:`.masks` (binary mask, pieces,
lumens filled, erosion), :mod:`.chains` (skeleton, branch points cut, voxels in order),
:mod:`.joining` (pieces joined by distance and angle), :mod:`.curves` (smoothing spline, ends
prolonged, sampling at a spacing), :mod:`.trace` (the whole step) and :mod:`.scoring` (traces
against known centre lines). Orientations are RELION's (see :mod:`deepict.orientations`).
"""
