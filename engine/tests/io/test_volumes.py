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


def test_a_streamed_volume_has_its_statistics_in_the_header(tmp_path):
    """Probability maps, masks and equalized tomograms are streamed; their headers said min 0, max -1, mean -2,
    rms -1 (unset), so viewers that take their contrast from the header showed nothing."""
    import io

    import mrcfile
    from deepict.io import volume_writer
    data = np.random.default_rng(0).normal(3.0, 2.0, (7, 5, 6)).astype(np.float32)
    with volume_writer(tmp_path / "v.mrc", data.shape, np.float32, 13.48) as write:
        write(4, data[4:])  # slabs in any order, as a writer may give them
        write(0, data[:4])
    with mrcfile.open(tmp_path / "v.mrc") as mrc:
        header = mrc.header
        assert np.array_equal(mrc.data, data)
        assert (header.dmin, header.dmax) == (data.min(), data.max())
        assert header.dmean == pytest.approx(data.mean(), rel=1e-5)
        assert header.rms == pytest.approx(data.std(), rel=1e-5)
    assert mrcfile.validate(str(tmp_path / "v.mrc"), print_file=io.StringIO())
