"""Coordinate CSVs end every line alike (deepict.io.coordinates)."""

from __future__ import annotations

import numpy as np

from deepict.io import CoordinateTable, read_coordinates, write_coordinates


def test_every_line_ends_in_a_newline_alone(tmp_path):
    """The comment line ended in \\n and the rows in \\r\\n: 'cut -f6' gave 'ribosome\\r'."""
    table = CoordinateTable(np.array([[1.0, 2, 3], [4, 5, 6]]),
                            {"class": np.array(["ribosome", "ribosome"], dtype=object)}, 13.48)
    write_coordinates(tmp_path / "p.csv", table)
    raw = (tmp_path / "p.csv").read_bytes()
    assert b"\r" not in raw and raw.endswith(b"ribosome\n")
    assert read_coordinates(tmp_path / "p.csv").columns["class"].tolist() == ["ribosome", "ribosome"]
