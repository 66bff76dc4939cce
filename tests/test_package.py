"""The package installs on the card layout: one namespace `vidagent` over agent/, tools/, ..."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_normal_install_maps_the_namespace_onto_the_folders(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    probe = (
        "import vidagent, vidagent.tools, vidagent.prompts, vidagent.evals, vidagent.models.profile as p;"
        "print(vidagent.__file__); print(vidagent.tools.__file__); print(len(p.list_profiles()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target)},
        check=True,
        capture_output=True,
        text=True,
    )
    package_file, tools_file, n_profiles = result.stdout.split()
    assert Path(package_file).is_relative_to(target / "vidagent")
    assert Path(tools_file) == target / "vidagent" / "tools" / "__init__.py"
    assert int(n_profiles) >= 4  # the YAML profiles ship as package data
    assert (target / "vidagent" / "app" / "web" / "index.html").is_file()  # and the web chat
    assert (target / "vidagent" / "media" / "data" / "announcement.mp4").is_file()  # and the demo video
    assert not list(target.glob("vidagent/**/ruff.toml"))  # lint rules stay in the source tree


def test_editable_install_resolves_the_same_names() -> None:
    import vidagent.evals
    import vidagent.prompts
    import vidagent.tools

    assert Path(vidagent.tools.__file__).parent == ROOT / "tools"
    assert Path(vidagent.prompts.__file__).parent == ROOT / "prompts"
    assert Path(vidagent.evals.__file__).parent == ROOT / "evals"


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, vidagent; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert result.stdout.strip() == "False"


def test_ruff_bans_imports_of_the_folder_names(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import tools\nfrom agent import cli\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--config",
            str(ROOT / "pyproject.toml"),
            "--select",
            "TID251",
            str(bad),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stdout.count("TID251") == 2


LAYERS = [  # (package, folder), lowest first: the README's architecture section
    ("core", "agent/core"),
    ("models", "agent/models"),
    ("media", "agent/media"),
    ("grounding", "agent/grounding"),
    ("tools", "tools"),
    ("agent", "agent/agent"),
    ("evals", "evals"),
    ("app", "agent/app"),
]


def _banned(folder: str, source: str) -> bool:
    """Whether ruff (with the folder's own config) reports TID251 on ``source`` placed in ``folder``."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--select",
            "TID251",
            "--output-format",
            "concise",
            "--stdin-filename",
            str(ROOT / folder / "probe.py"),
            "-",
        ],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return "TID251" in result.stdout


@pytest.mark.parametrize("level", range(len(LAYERS)))
def test_an_import_up_the_layers_fails_lint_and_one_down_passes(level: int) -> None:
    name, folder = LAYERS[level]
    for higher, _ in LAYERS[level + 1 :]:
        assert _banned(folder, f"from vidagent.{higher} import anything\n"), f"{name} may import {higher}"
        assert _banned(folder, f"def f():\n    import vidagent.{higher}.anything\n"), (
            f"{name} may import {higher} lazily"
        )
    for lower, _ in LAYERS[: level + 1]:
        assert not _banned(folder, f"from vidagent.{lower} import anything\n"), (
            f"{name} may not import {lower}"
        )


def test_prompts_import_nothing_else_of_vidagent() -> None:
    assert all(_banned("prompts", f"import vidagent.{name}\n") for name, _ in LAYERS)


def test_every_layer_folder_has_its_rule_and_every_package_is_a_layer() -> None:
    import vidagent

    packages = {p.name for p in (ROOT / "agent").iterdir() if (p / "__init__.py").is_file()}
    assert packages == {name for name, folder in LAYERS if folder.startswith("agent/")}
    assert all((ROOT / folder / "ruff.toml").is_file() for _, folder in LAYERS[:-1])
    assert {p.stem for p in (ROOT / "agent").glob("*.py")} == {"__init__"}  # nothing outside a layer
    assert vidagent.__version__ and vidagent.VideoAgent.__name__ == "VideoAgent"


def test_the_version_is_written_once() -> None:
    from importlib.metadata import version

    import vidagent

    assert version("vidagent") == vidagent.__version__
    assert "version = " not in (ROOT / "pyproject.toml").read_text().split("[tool.setuptools.dynamic]")[0]
