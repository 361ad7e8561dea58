"""The clinical table: typed columns, and errors naming the file and every offending line."""

from __future__ import annotations

from pathlib import Path

import pytest

from npcseg.io.clinical import read_clinical, scan_clinical


def write(tmp_path: Path, text: str, name: str = "clinical.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_columns_are_typed_from_their_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "case_id,sex,age,t_category,chemotherapy,dose_gy,centre\n"
        "NPC001,M,54,T2,1,70.0,A\n"
        "NPC002,F,61,T3,0,66,B\n"
        "NPC003,F,,T1,NA,6.996e1,1\n",
    )
    table = read_clinical(path)

    assert table.case_ids == ("NPC001", "NPC002", "NPC003")
    assert table.columns == ("sex", "age", "t_category", "chemotherapy", "dose_gy", "centre")
    assert table.column_types == {
        "sex": str,
        "age": int,
        "t_category": str,
        "chemotherapy": int,
        "dose_gy": float,
        "centre": str,  # "1" among letters: the column stays text
    }
    assert table.values("age") == {"NPC001": 54, "NPC002": 61, "NPC003": None}
    assert table.values("dose_gy") == {"NPC001": 70.0, "NPC002": 66.0, "NPC003": pytest.approx(69.96)}
    assert table.values("chemotherapy") == {"NPC001": 1, "NPC002": 0, "NPC003": None}
    assert table.values("centre") == {"NPC001": "A", "NPC002": "B", "NPC003": "1"}
    assert table.lines == {"NPC001": 2, "NPC002": 3, "NPC003": 4}
    assert len(table) == 3 and "NPC002" in table and "NPC004" not in table
    assert all(type(value) is int for value in table.values("age").values() if value is not None)


def test_unknown_column_names_the_file(tmp_path: Path) -> None:
    table = read_clinical(write(tmp_path, "case_id,sex\nNPC001,M\n"))
    with pytest.raises(KeyError, match="no column 'age'"):
        table.values("age")


def test_spaces_quotes_bom_blank_lines_and_semicolons(tmp_path: Path) -> None:
    text = '\ufeffcase_id ; sex ; note\n\nNPC001 ; M ; "a; b"\n   \nNPC002;F;\n'
    table = read_clinical(write(tmp_path, text))
    assert table.columns == ("sex", "note")
    assert table.values("note") == {"NPC001": "a; b", "NPC002": None}
    assert table.lines == {"NPC001": 3, "NPC002": 5}


def test_missing_case_id_column(tmp_path: Path) -> None:
    path = write(tmp_path, "\npatient,sex\nNPC001,M\n")
    with pytest.raises(ValueError, match=r"clinical\.csv, line 2: no 'case_id' column") as caught:
        read_clinical(path)
    assert str(path) in str(caught.value)


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the file is empty"):
        read_clinical(write(tmp_path, "\n\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="clinical table not found"):
        read_clinical(tmp_path / "clinical.csv")


def test_empty_case_id(tmp_path: Path) -> None:
    path = write(tmp_path, "case_id,sex\nNPC001,M\n ,F\n")
    with pytest.raises(ValueError, match=r"line 3: empty case_id") as caught:
        read_clinical(path)
    assert str(caught.value).startswith(f"{path}, line 3")


@pytest.mark.parametrize("case_id", ["NPC 001", "-NPC001", "NPC/001", "x" * 65])
def test_ill_formed_case_id(tmp_path: Path, case_id: str) -> None:
    path = write(tmp_path, f"case_id,sex\nNPC001,M\n{case_id},F\n")
    with pytest.raises(ValueError, match=r"line 3: ill-formed case_id"):
        read_clinical(path)


def test_duplicate_case_ids_exact_and_ignoring_case(tmp_path: Path) -> None:
    path = write(tmp_path, "case_id,sex\nNPC001,M\nNPC002,F\nNPC001,F\nnpc002,M\n")
    table, issues = scan_clinical(path)
    assert [str(issue) for issue in issues] == [
        "line 4: duplicate case_id 'NPC001', already on line 2",
        "line 5: duplicate case_id 'npc002', already on line 3 as 'NPC002' (ids are compared ignoring case)",
    ]
    assert table.case_ids == ("NPC001", "NPC002")  # the first row of each id is kept
    assert table.values("sex") == {"NPC001": "M", "NPC002": "F"}


def test_ragged_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "case_id,sex,age\nNPC001,M,54\nNPC002,F\nNPC003,F,47,extra\n")
    _, issues = scan_clinical(path)
    assert [str(issue) for issue in issues] == [
        "line 3: 2 cells, but the header has 3 columns",
        "line 4: 4 cells, but the header has 3 columns",
    ]


def test_header_with_unnamed_or_repeated_columns(tmp_path: Path) -> None:
    _, issues = scan_clinical(write(tmp_path, "case_id,age,,age\nNPC001,1,2,3\n"))
    assert [str(issue) for issue in issues] == [
        "line 1: column 3 has no name",
        "line 1: column 'age' appears twice",
    ]


def test_every_problem_is_in_one_error(tmp_path: Path) -> None:
    path = write(tmp_path, "case_id,sex\nNPC001,M\n,F\nNPC001,F\nNPC004\nbad id,M\n")
    with pytest.raises(ValueError) as caught:
        read_clinical(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: 4 problems:")
    for expected in ("line 3: empty", "line 4: duplicate", "line 5: 1 cells", "line 6: ill-formed"):
        assert expected in message


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "clinical.csv"
    path.write_bytes("case_id,centre\nNPC001,Zürich\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        read_clinical(path)
