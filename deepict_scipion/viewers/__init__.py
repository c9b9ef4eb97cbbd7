"""The plugin's viewers (Scipion discovers them from this module)."""

try:  # the PNG functions (viewers.plots) work without Scipion; the viewer classes need it
    import pwem
except ImportError:  # engine-only installation
    pwem = None

if pwem is not None:
    from .viewers import DeepictEvaluationViewer, DeepictPicksViewer, DeepictTrainingViewer
    from .viewer_spectrum import DeepictSpectrumViewer
