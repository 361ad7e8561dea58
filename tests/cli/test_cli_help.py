"""Every command and sub-command of ``npcseg`` answers ``--help`` with its own description."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from npcseg.cli.main import app


def _command_paths() -> list[tuple[str, ...]]:
    root = typer.main.get_command(app)
    paths: list[tuple[str, ...]] = []

    def walk(command: Any, prefix: tuple[str, ...]) -> None:
        paths.append(prefix)
        if hasattr(command, "commands"):  # a group (typer bundles its own click)
            for name, sub in command.commands.items():
                walk(sub, (*prefix, name))

    walk(root, ())
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=lambda path: " ".join(path) or "npcseg")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    assert "Not written yet" not in result.output


def test_expected_commands_are_registered() -> None:
    names = {path[0] for path in _command_paths() if path}
    assert {"synth", "validate", "register", "preprocess", "demo"} <= names
