"""The clinical table of a cohort: ``clinical.csv`` with one row per case, keyed by ``case_id``.

The first row names the columns; one must be ``case_id`` (the case folder name), the others are covariates
such as ``sex``, ``age``, ``t_category``, ``chemotherapy``, ``centre``, ``scanner``. Columns are typed from
their values: a column is numeric when every non-missing value is a number (``int`` when all are integers,
``float`` otherwise) and a string column otherwise. Missing values (an empty cell or one of
:data:`MISSING_VALUES`) read as ``None``. The separator is ``,``; a header line holding ``;`` or a tab and no
comma selects that separator instead (files saved by spreadsheet programs in some locales).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from npcseg.io.cohort import CASE_ID_PATTERN

CASE_ID_COLUMN = "case_id"
MISSING_VALUES: frozenset[str] = frozenset({"", "NA", "N/A", "n/a", "NaN", "nan"})
"""Cell texts (after stripping spaces) that mean "no value"."""

Value = int | float | str | None
"""A cell: a number, a string, or ``None`` when missing."""

_INTEGER = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


@dataclass(frozen=True)
class ClinicalIssue:
    """One problem found in a clinical table.

    Attributes:
        line: 1-based line of the file the problem is on (``None`` for the file as a whole).
        message: what is wrong, naming the offending value.
    """

    line: int | None
    message: str

    def __str__(self) -> str:
        return self.message if self.line is None else f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class ClinicalTable:
    """Covariates per case.

    Attributes:
        path: the file read.
        columns: covariate column names in file order (``case_id`` excluded).
        column_types: column -> ``int``, ``float`` or ``str``, from the values (see the module docstring).
        rows: case id -> column -> value (``None`` when missing), in file order.
        lines: case id -> the 1-based line of its row (for messages).
    """

    path: Path
    columns: tuple[str, ...]
    column_types: dict[str, type]
    rows: dict[str, dict[str, Value]]
    lines: dict[str, int]

    @property
    def case_ids(self) -> tuple[str, ...]:
        """Case ids in file order."""
        return tuple(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self.rows

    def values(self, column: str) -> dict[str, Value]:
        """Case id -> value of ``column``; ``KeyError`` naming the file and the columns it has."""
        if column not in self.column_types:
            raise KeyError(f"{self.path}: no column '{column}'; columns: {list(self.columns)}")
        return {case_id: row[column] for case_id, row in self.rows.items()}


def read_clinical(path: Path) -> ClinicalTable:
    """Read and check a clinical table.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: naming the file and every offending line: no ``case_id`` column, an empty or ill-formed
            case id (see :data:`npcseg.io.cohort.CASE_ID_PATTERN`), a duplicate case id (compared ignoring
            case, as case folders are), a row with more or fewer cells than the header.
    """
    table, issues = scan_clinical(path)
    if len(issues) == 1:
        raise ValueError(f"{table.path}, {issues[0]}")
    if issues:
        listing = "\n".join(f"  {issue}" for issue in issues)
        raise ValueError(f"{table.path}: {len(issues)} problems:\n{listing}")
    return table


def scan_clinical(path: Path) -> tuple[ClinicalTable, list[ClinicalIssue]]:
    """Read a clinical table leniently: rows with problems are left out and each problem is described.

    This is what cohort validation uses to report every problem at once; :func:`read_clinical` raises on them.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the file is not UTF-8 text.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: clinical table not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error})") from error
    issues: list[ClinicalIssue] = []
    lines = text.splitlines(keepends=True)
    header_line = next((line for line in lines if line.strip()), "")
    delimiter = ","
    if "," not in header_line:
        delimiter = next((candidate for candidate in (";", "\t") if candidate in header_line), ",")
    reader = csv.reader(lines, delimiter=delimiter, skipinitialspace=True)

    header: list[str] | None = None
    header_line_number = 0
    raw_rows: list[tuple[int, list[str]]] = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue  # blank line
        if header is None:
            header = [cell.strip() for cell in cells]
            header_line_number = reader.line_num
        else:
            raw_rows.append((reader.line_num, [cell.strip() for cell in cells]))

    empty = ClinicalTable(path=path, columns=(), column_types={}, rows={}, lines={})
    if header is None:
        issue = ClinicalIssue(None, f"the file is empty; expected a header line with '{CASE_ID_COLUMN}'")
        return empty, [issue]
    if CASE_ID_COLUMN not in header:
        return empty, [
            ClinicalIssue(header_line_number, f"no '{CASE_ID_COLUMN}' column in the header; columns: {header}")
        ]
    for position, name in enumerate(header):
        if not name:
            issues.append(ClinicalIssue(header_line_number, f"column {position + 1} has no name"))
        elif header.index(name) != position:
            issues.append(ClinicalIssue(header_line_number, f"column '{name}' appears twice"))
    id_position = header.index(CASE_ID_COLUMN)
    columns = tuple(name for name in header if name != CASE_ID_COLUMN)

    texts: dict[str, dict[str, str]] = {}
    row_lines: dict[str, int] = {}
    first_line_of: dict[str, tuple[str, int]] = {}  # lower-case id -> (id, line)
    for line_number, cells in raw_rows:
        if len(cells) != len(header):
            issues.append(ClinicalIssue(line_number, f"{len(cells)} cells, but the header has {len(header)} columns"))
            continue
        case_id = cells[id_position]
        if not case_id:
            issues.append(ClinicalIssue(line_number, f"empty {CASE_ID_COLUMN}"))
            continue
        if not CASE_ID_PATTERN.fullmatch(case_id):
            issues.append(
                ClinicalIssue(
                    line_number,
                    f"ill-formed {CASE_ID_COLUMN} {case_id!r} (letters, digits, '_', '.', '-'; starting with "
                    "a letter or digit; at most 64 characters)",
                )
            )
            continue
        if case_id.lower() in first_line_of:
            earlier_id, earlier_line = first_line_of[case_id.lower()]
            same = "" if earlier_id == case_id else f" as {earlier_id!r} (ids are compared ignoring case)"
            message = f"duplicate {CASE_ID_COLUMN} {case_id!r}, already on line {earlier_line}{same}"
            issues.append(ClinicalIssue(line_number, message))
            continue
        first_line_of[case_id.lower()] = (case_id, line_number)
        texts[case_id] = dict(zip(header, cells, strict=True))
        row_lines[case_id] = line_number

    column_types = {column: _column_type([row[column] for row in texts.values()]) for column in columns}
    rows = {
        case_id: {column: _parse(row[column], column_types[column]) for column in columns}
        for case_id, row in texts.items()
    }
    table = ClinicalTable(path=path, columns=columns, column_types=column_types, rows=rows, lines=row_lines)
    return table, issues


def _column_type(cells: list[str]) -> type:
    present = [cell for cell in cells if cell not in MISSING_VALUES]
    if present and all(_INTEGER.match(cell) for cell in present):
        return int
    if present and all(_NUMBER.match(cell) for cell in present):
        return float
    return str


def _parse(cell: str, column_type: type) -> Value:
    if cell in MISSING_VALUES:
        return None
    if column_type is int:
        return int(cell)
    if column_type is float:
        return float(cell)
    return cell
