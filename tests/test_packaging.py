"""The release artefacts: an sdist and a wheel built from a copy of this checkout.

Built the way ``python -m build`` does it, without needing that tool or a download: the build
backend that ``[build-system]`` names (setuptools, installed with the dev tools) runs its PEP
517 hooks in a fresh interpreter that sees only its own folder (``python -S``): the sdist from the source
tree, then the wheel from the unpacked sdist (so a file the sdist forgets is missing from the
wheel too). The copy keeps the build's ``build/`` and ``*.egg-info`` out of the checkout, and
a stale ``build/lib`` out of the wheel.
"""

from __future__ import annotations

import ast
import email.parser
import json
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("beatx", "django_beatx")
#: What a checkout holds that is no part of a build (the .gitignore list, and git's own folder).
NOT_SOURCE = (
    ".git",
    ".venv",
    "__pycache__",
    "*.egg-info",
    ".*_cache",
    ".hypothesis",
    "build",
    "dist",
    "site",
    "artifacts",
    "*.sqlite3",
)


def source_version() -> str:
    """``beatx.__version__`` as beatx/__init__.py spells it (read, not imported)."""
    tree = ast.parse((ROOT / "beatx" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, str)
            return value
    raise AssertionError("beatx/__init__.py assigns no __version__")


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def run_hook(backend: Path, cwd: Path, hook: str, out: Path) -> str:
    """Call ``build_meta.<hook>(out)`` in ``cwd``; the file name it returns. Fails on any
    deprecation warning of the backend (setuptools prints those as it reads pyproject.toml)."""
    build_backend = pyproject()["build-system"]["build-backend"]  # type: ignore[index]
    code = (
        "import importlib, json, sys\n"
        f"backend = importlib.import_module({build_backend!r})\n"
        f"print('HOOK-RESULT ' + json.dumps(backend.{hook}(sys.argv[1])))\n"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", code, str(out)],
        cwd=cwd,
        env={"PYTHONPATH": str(backend), "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{hook} failed:\n{output[-4000:]}"
    assert "deprecat" not in output.lower(), f"{hook} printed a deprecation warning:\n{output}"
    marks = [line for line in result.stdout.splitlines() if line.startswith("HOOK-RESULT ")]
    assert marks, output[-4000:]
    name = json.loads(marks[-1].removeprefix("HOOK-RESULT "))
    assert isinstance(name, str)
    return name


@dataclass
class Artefacts:
    sdist: Path
    wheel: Path
    source: Path  # the copy the sdist was built from


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Artefacts:
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    # The build backend installed with the dev tools (no download at test time).
    import setuptools

    requires = pyproject()["build-system"]["requires"]  # type: ignore[index]
    wanted = next(r for r in requires if r.startswith("setuptools"))
    minimum = tuple(int(part) for part in wanted.split(">=")[1].split("."))
    have = tuple(int(part) for part in setuptools.__version__.split(".")[:2])
    assert have >= minimum, f"setuptools {setuptools.__version__} < {wanted}: run make install"
    backend = Path(setuptools.__file__).resolve().parent.parent
    dist = tmp / "dist"
    dist.mkdir()
    sdist = dist / run_hook(backend, source, "build_sdist", dist)
    unpacked = tmp / "unpacked"
    # The "data" filter (Python 3.11.4+) refuses members that would land outside ``unpacked``.
    safe: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(sdist) as archive:
        archive.extractall(unpacked, **safe)
    (top,) = unpacked.iterdir()
    wheel = dist / run_hook(backend, top, "build_wheel", dist)
    return Artefacts(sdist, wheel, source)


def wheel_names(artefacts: Artefacts) -> set[str]:
    with zipfile.ZipFile(artefacts.wheel) as archive:
        return set(archive.namelist())


def sdist_names(artefacts: Artefacts) -> set[str]:
    with tarfile.open(artefacts.sdist) as archive:
        return {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}


def wheel_metadata(artefacts: Artefacts) -> email.message.Message:
    version = source_version()
    with zipfile.ZipFile(artefacts.wheel) as archive:
        raw = archive.read(f"beatx-{version}.dist-info/METADATA").decode()
    return email.parser.Parser().parsestr(raw)


def test_pyproject_takes_its_version_from_beatx() -> None:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    assert "version" not in project, "one version source: beatx.__version__"
    assert "version" in project["dynamic"]
    dynamic = pyproject()["tool"]["setuptools"]["dynamic"]  # type: ignore[index]
    assert dynamic["version"] == {"attr": "beatx.__version__"}


def test_the_version_of_both_artefacts_is_beatx_version(artefacts: Artefacts) -> None:
    import beatx

    version = source_version()
    assert beatx.__version__ == version
    assert artefacts.sdist.name == f"beatx-{version}.tar.gz"
    assert artefacts.wheel.name == f"beatx-{version}-py3-none-any.whl"
    assert wheel_metadata(artefacts)["Version"] == version
    with tarfile.open(artefacts.sdist) as archive:
        member = archive.extractfile(f"beatx-{version}/PKG-INFO")
        assert member is not None
        assert email.parser.Parser().parsestr(member.read().decode())["Version"] == version


def test_the_license_is_inside_both_and_spdx_in_the_metadata(artefacts: Artefacts) -> None:
    assert "LICENSE" in sdist_names(artefacts)
    licence = f"beatx-{source_version()}.dist-info/licenses/LICENSE"
    assert licence in wheel_names(artefacts)
    with zipfile.ZipFile(artefacts.wheel) as archive:
        assert archive.read(licence).decode() == (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    metadata = wheel_metadata(artefacts)
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]


@pytest.mark.parametrize("package", PACKAGES)
def test_both_packages_are_typed(artefacts: Artefacts, package: str) -> None:
    assert f"{package}/py.typed" in wheel_names(artefacts)
    assert f"{package}/py.typed" in sdist_names(artefacts)


def test_the_lua_scripts_are_in_the_wheel(artefacts: Artefacts) -> None:
    scripts = sorted(p.name for p in (artefacts.source / "beatx" / "stores" / "lua").glob("*.lua"))
    assert "acquire.lua" in scripts
    in_wheel = sorted(
        name.rsplit("/", 1)[1] for name in wheel_names(artefacts) if name.startswith("beatx/stores/lua/")
    )
    assert in_wheel == scripts


@pytest.mark.parametrize("package", PACKAGES)
def test_every_file_of_the_packages_is_in_the_wheel(artefacts: Artefacts, package: str) -> None:
    """Modules, migrations, templates, scripts: nothing a package folder holds is left out."""
    expected = {
        path.relative_to(artefacts.source).as_posix()
        for path in (artefacts.source / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    missing = sorted(expected - wheel_names(artefacts))
    assert not missing, f"left out of the wheel: {missing}"


def test_the_entry_points_are_declared(artefacts: Artefacts) -> None:
    with zipfile.ZipFile(artefacts.wheel) as archive:
        text = archive.read(f"beatx-{source_version()}.dist-info/entry_points.txt").decode()
    assert "beatx = beatx.cli:main" in text
    assert "beatx = beatx.celery:BeatxScheduler" in text
