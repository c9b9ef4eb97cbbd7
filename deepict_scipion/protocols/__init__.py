"""The plugin's protocols (Scipion discovers them from this module)."""

from .protocol_import_model import ProtDeepictImportModel
from .protocol_pick import ProtDeepictPick
from .protocol_segment3d import ProtDeepictSegment3D
from .protocol_train3d import ProtDeepictTrain3D
from .protocol_ensemble import ProtDeepictEnsemble
from .protocol_equalize import ProtDeepictEqualize
from .protocol_export import ProtDeepictExport
from .protocol_evaluate import ProtDeepictEvaluate
from .protocol_segment2d import ProtDeepictSegment2D
from .protocol_train2d import ProtDeepictTrain2D
from .protocol_copick import ProtDeepictCopickExport, ProtDeepictCopickImport
from .protocol_import_coordinates import ProtDeepictImportCoordinates
from .protocol_filter_context import ProtDeepictFilterContext
from .protocol_trace_filaments import ProtDeepictTraceFilaments
