"""The documentation site builds strictly and covers the public API and every CLI command."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

import beatx
from beatx.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _mkdocs() -> list[str]:
    script = Path(sys.executable).with_name("mkdocs")
    if script.exists():
        return [str(script)]
    if shutil.which("mkdocs"):
        return ["mkdocs"]
    return [sys.executable, "-m", "mkdocs"]


def test_mkdocs_builds_in_strict_mode(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *_mkdocs(),
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").exists()


@pytest.mark.parametrize("name", beatx.__all__)
def test_every_public_name_is_in_the_api_reference(name: str) -> None:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    assert re.search(rf"`{re.escape(name)}`", text), f"{name} is in beatx.__all__ but not in docs/api.md"


def _command_paths(group: click.Command, prefix: str = "beatx") -> list[str]:
    paths: list[str] = []
    if isinstance(group, click.Group):
        for name, command in sorted(group.commands.items()):
            if command.hidden:
                continue
            path = f"{prefix} {name}"
            paths.append(path)
            paths.extend(_command_paths(command, path))
    return paths


def test_every_cli_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    paths = _command_paths(cli)
    assert "beatx jobs add" in paths and "beatx status" in paths
    missing = [path for path in paths if f"## {path}" not in text]
    assert not missing, f"commands without a section in docs/cli.md: {missing}"


def test_every_exit_code_is_documented() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    for code in ("0", "1", "2", "3"):
        assert f"| `{code}` |" in text
