"""Export picked coordinates for RELION 4, RELION 5, Warp/M, Dynamo and DeePiCt motive lists.

Pure functions over coordinates (:class:`~deepict.io.CoordinateTable`) and tomogram metadata
(:class:`TomogramInfo`), one module per format with its reader beside its writer
(:mod:`.relion`, :mod:`.warp`, :mod:`.dynamo`, :mod:`.motl`); what they share lives in
:mod:`.picks` (tomograms, picks, rescaling to output pixels), :mod:`.classes` (class numbers and
the class-name map), :mod:`.staging` (all-or-nothing writing) and :mod:`.star` (STAR tables through
``emtable``). Their public names are importable from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from deepict.errors import ParameterError
from deepict.formats.classes import class_map_path, class_name_map, read_class_map
from deepict.formats.copick import COPICK_FORMAT
from deepict.formats.dynamo import (DYNAMO_COLUMNS, dynamo_doc_path, dynamo_rows, read_dynamo, read_dynamo_doc,
                                    read_dynamo_table, write_dynamo)
from deepict.formats.motl import MOTL_COLUMNS, motl_file_name, motl_rows, read_motl, read_motl_file, write_motl
from deepict.formats.picks import (PickedTomogram, TomogramInfo, check_output_pixel_size, scale_factor,
                                   tomogram_stem)
from deepict.formats.relion import (RELION4_COLUMNS, RELION5_COLUMNS, RELION5_VERSION_COMMENT,
                                    particles_star_format, read_relion4, read_relion5, relion4_rows, relion5_centre,
                                    relion5_rows, write_relion4, write_relion5)
from deepict.formats.warp import WARP_COLUMNS, read_warp, warp_file_name, warp_micrograph_name, write_warp
from deepict.io import CoordinateTable

FORMATS = ("relion4", "relion5", "warp", "dynamo", "motl")

_WRITERS = {"relion4": write_relion4, "relion5": write_relion5, "warp": write_warp,
            "dynamo": write_dynamo, "motl": write_motl}
_READERS = {"relion4": read_relion4, "relion5": read_relion5, "warp": read_warp,
            "dynamo": read_dynamo, "motl": read_motl}


def check_format(fmt: str) -> str:
    name = str(fmt).lower()
    if name not in FORMATS:
        raise ParameterError(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    return name


def carries_classes(fmt: str) -> bool:
    """Whether format ``fmt`` writes a class per particle (Warp files do not)."""
    return check_format(fmt) != "warp"


def carries_orientations(fmt: str) -> bool:
    """Whether format ``fmt`` (one of :data:`FORMATS`, or copick's, whose picks hold 4×4 transformation matrices)
    writes each particle's orientation (DeePiCt's motl is written with angles 0)."""
    return str(fmt).lower() == COPICK_FORMAT or check_format(fmt) != "motl"


def export_coordinates(fmt: str, out, picks: Sequence[PickedTomogram],
                       output_pixel_size: Optional[float] = None) -> list[Path]:
    """Write ``picks`` in format ``fmt`` (one of :data:`FORMATS`) to ``out``; return the files written.

    ``out`` is a file for relion4 / relion5 / dynamo (``.tbl``; the ``.doc`` goes beside it), a
    folder for warp, and a folder or (single tomogram) a ``.csv`` file for motl.
    """
    fmt = check_format(fmt)
    check_output_pixel_size(output_pixel_size)
    return _WRITERS[fmt](out, picks, output_pixel_size=output_pixel_size)


def read_exported(fmt: str, out, tomograms: Sequence[TomogramInfo],
                  output_pixel_size: Optional[float] = None) -> list[CoordinateTable]:
    """Read an export back into tomogram voxels (one table per tomogram, in the given order)."""
    fmt = check_format(fmt)
    for tomogram in tomograms:
        if not isinstance(tomogram, TomogramInfo):
            raise ParameterError("read_exported needs TomogramInfo entries.")
    return _READERS[fmt](out, tomograms, output_pixel_size=output_pixel_size)


__all__ = ["DYNAMO_COLUMNS", "FORMATS", "MOTL_COLUMNS", "RELION4_COLUMNS", "RELION5_COLUMNS", "RELION5_VERSION_COMMENT",
           "WARP_COLUMNS", "PickedTomogram", "TomogramInfo", "carries_classes", "carries_orientations", "check_format",
           "check_output_pixel_size", "class_map_path", "class_name_map", "dynamo_doc_path", "dynamo_rows",
           "export_coordinates", "motl_file_name", "particles_star_format", "motl_rows", "read_class_map", "read_dynamo", "read_dynamo_doc",
           "read_dynamo_table", "read_exported", "read_motl", "read_motl_file", "read_relion4", "read_relion5",
           "read_warp", "relion4_rows", "relion5_centre", "relion5_rows", "scale_factor", "tomogram_stem",
           "warp_file_name", "warp_micrograph_name", "write_dynamo", "write_motl", "write_relion4", "write_relion5",
           "write_warp"]
