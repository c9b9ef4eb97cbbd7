"""Volumes (MRC) and coordinate tables on disk, written atomically.

One module per job: :mod:`.volumes` (MRC volumes, slab reading), :mod:`.coordinates` (CSV
coordinate tables), :mod:`.files` (readable inputs, atomic writes, scratch folders) and
:mod:`.outputs` (output paths checked and claimed before any work). Their public names are
importable from here (``from deepict.io import read_volume``).
"""

from deepict.conventions import SLAB_SLICES, VOXEL_SIZE_KEY
from deepict.io.coordinates import CoordinateTable, check_coordinates_in_volume, read_coordinates, write_coordinates
from deepict.io.files import (SCRATCH_PREFIX, TEMPORARY_SUFFIX, atomic_path, check_readable, remove_stale_temporaries,
                              scratch_directory)
from deepict.io.volumes import (ISOTROPY_TOLERANCE, READ_CHUNK_VOXELS, SUPPORTED_DTYPES, Volume,
                                check_finite_slab, check_finite_volume, iter_slabs, read_slab, read_volume,
                                require_voxel_size, slices_per_chunk, volume_mean_std, volume_writer, write_volume)

__all__ = ["CoordinateTable", "ISOTROPY_TOLERANCE", "READ_CHUNK_VOXELS", "SCRATCH_PREFIX", "SLAB_SLICES",
           "SUPPORTED_DTYPES", "TEMPORARY_SUFFIX", "VOXEL_SIZE_KEY", "Volume", "atomic_path",
           "check_coordinates_in_volume", "check_finite_slab", "check_finite_volume", "check_readable", "iter_slabs",
           "read_coordinates", "read_slab", "read_volume", "remove_stale_temporaries", "require_voxel_size",
           "scratch_directory",
           "slices_per_chunk", "volume_mean_std", "volume_writer", "write_coordinates", "write_volume"]
