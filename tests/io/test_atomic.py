"""Atomic writes: the target is complete or absent, never half-written, and no temporary file stays behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from npcseg.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text, full_suffix


class Boom(RuntimeError):
    pass


def test_full_suffix_keeps_double_extensions() -> None:
    assert full_suffix(Path("a/t2.nii.gz")) == ".nii.gz"
    assert full_suffix(Path("t2.nii")) == ".nii"
    assert full_suffix(Path("config.yaml")) == ".yaml"
    assert full_suffix(Path("README")) == ""


def test_success_renames_onto_the_target(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "image.nii.gz"
    with atomic_path(target) as temporary:
        assert temporary.parent == target.parent
        assert temporary.name.endswith(".nii.gz")  # SimpleITK picks the writer from the ending
        assert not target.exists()
        temporary.write_bytes(b"payload")
    assert target.read_bytes() == b"payload"
    assert os.listdir(target.parent) == ["image.nii.gz"]


def test_a_raising_body_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(Boom), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise Boom
    assert os.listdir(tmp_path) == []


def test_a_raising_body_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(Boom), atomic_path(target) as temporary:
        temporary.write_text("new but broken")
        raise Boom
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_output_gets_the_usual_permissions(tmp_path: Path) -> None:
    # mkstemp creates its file 0o600; a plainly written output would be 0o666 less the umask.
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = tmp_path / "atomic.txt"
    atomic_write_text(atomic, "x")
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
