"""STAR tables (through ``emtable``): text of one loop table, and reading one back."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

from deepict.errors import InputFileError, ParameterError


def _table_class():
    try:
        from emtable import Table
    except ImportError as exc:  # pragma: no cover - emtable is a dependency
        raise ParameterError("STAR export needs the 'emtable' package: pip install emtable") from exc
    return Table


def write_star(handle, table_name: Optional[str], columns: list[str], rows: list[tuple]) -> None:
    """Write one loop table; an empty table still gets its column header."""
    Table = _table_class()
    table = Table(columns=columns)
    for row in rows:
        table.addRow(*row)
    if rows:
        table.writeStar(handle, tableName=table_name)
    else:
        writer = Table.Writer(handle)
        writer.writeTableName(table_name)
        writer.writeHeader(table.getColumns())
        writer.writeNewline()


def read_star(path: Path, table_name: Optional[str], required: list[str]):
    Table = _table_class()
    if not Path(path).is_file():
        raise InputFileError(path, "STAR file not found", "Check the path.")
    try:
        table = Table(fileName=str(path), tableName=table_name,
                      types={"rlnTomoName": str, "rlnMicrographName": str})
    except Exception as exc:  # emtable raises bare Exceptions for missing blocks / bad rows
        raise InputFileError(path, f"not a readable STAR file with table data_{table_name or ''} ({exc})",
                             "Give a STAR file written by this export (or by RELION/Warp).") from exc
    missing = [c for c in required if c not in table.getColumnNames()] if len(table.getColumnNames()) else []
    if missing:
        raise InputFileError(path, f"lacks the column(s) {missing}", "Give a STAR file of the expected kind.")
    return table


def star_text(table_name: Optional[str], columns: list[str], rows: list[tuple], header: str = "") -> str:
    handle = io.StringIO()
    handle.write(header)
    write_star(handle, table_name, columns, rows)
    return handle.getvalue()
