"""The plugin's viewers (Scipion discovers them from this module). The pictures themselves are drawn by
:mod:`.plots` (matplotlib only), which scripts may use directly."""

from .viewers import DeepictEvaluationViewer, DeepictPicksViewer, DeepictTrainingViewer
from .viewer_spectrum import DeepictSpectrumViewer
