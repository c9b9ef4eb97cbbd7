"""What read_volume reports of an MRC header and of bad voxels (deepict.io.volumes)."""

from __future__ import annotations

import numpy as np
import pytest

from deepict.errors import InputFileError
from deepict.io import read_volume, write_volume


def test_the_header_voxel_size_reads_as_written(tmp_path):
    """The header holds float32: 26.96 came back as 26.959999084472656 into JSON summaries and messages."""
    write_volume(tmp_path / "t.mrc", np.zeros((2, 3, 4), np.float32), 26.96)
    assert read_volume(tmp_path / "t.mrc").voxel_size == 26.96


def test_a_nan_voxel_is_reported_at_its_slice(tmp_path):
    """The error named the first slice of the slab read (z=0), not where the NaN lies."""
    data = np.zeros((40, 8, 8), np.float32)
    data[37, 2, 3] = np.nan
    write_volume(tmp_path / "nan.mrc", data, 10.0)
    with pytest.raises(InputFileError) as error:
        read_volume(tmp_path / "nan.mrc")
    assert "nan.mrc" in str(error.value) and "the first in slice z=37" in str(error.value)


def test_a_coordinate_table_given_as_a_volume_is_named_as_such(tmp_path):
    """It was called corrupt or truncated, with the fix to copy or reconstruct it again."""
    (tmp_path / "T.csv").write_text("# voxel_size_angstrom: 13.48\nx,y,z\n1,2,3\n")
    with pytest.raises(InputFileError) as error:
        read_volume(tmp_path / "T.csv")
    assert "T.csv: is a text file (a coordinate table?), not an MRC volume" in str(error.value)
    assert "coordinate tables go to the coordinate options" in str(error.value)
