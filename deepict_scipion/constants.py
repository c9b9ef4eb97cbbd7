"""Names the plugin's protocols and viewers share (the engine's own rules live in deepict.conventions)."""

#: Attributes of a SetOfTomograms made by the equalize spectrum protocol that tell later protocols
#: (train 3D, pick) what it was equalized to: the reference spectrum TSV, the low-pass (Å) and its width.
SPECTRUM_ATTRIBUTE = "_deepictReferenceSpectrum"
LOWPASS_ATTRIBUTE = "_deepictLowpassAngstrom"
LOWPASS_WIDTH_ATTRIBUTE = "_deepictLowpassWidth"

#: Attribute of a SetOfCoordinates3D made by the trace filaments protocol: its group ids are filaments, which
#: exports write as helical tubes (rlnHelicalTubeID, the segments' track length), not as classes.
FILAMENTS_ATTRIBUTE = "_deepictFilaments"

#: Attribute of a SetOfTomoMasks of probability maps (pick, segment 3D and segment 2D): offered wherever masks are,
#: they are refused where a binary mask is needed (every voxel above 0 would count).
PROBABILITY_MAPS_ATTRIBUTE = "_deepictProbabilityMaps"

#: Columns of DeePiCt's original spectrum TSV (``extract_spectrum.py``), in index units of its tomogram.
ORIGINAL_SPECTRUM_COLUMNS = ("freq", "intensity")
