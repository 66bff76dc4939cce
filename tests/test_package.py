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
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    probe = (
        "import vidagent, vidagent.tools, vidagent.prompts, vidagent.evals, vidagent.profile as p;"
        "print(vidagent.__file__); print(vidagent.tools.__file__); print(len(p.list_profiles()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(target)},
        check=True, capture_output=True, text=True,
    )
    package_file, tools_file, n_profiles = result.stdout.split()
    assert Path(package_file).is_relative_to(target / "vidagent")
    assert Path(tools_file) == target / "vidagent" / "tools" / "__init__.py"
    assert int(n_profiles) >= 4  # the YAML profiles ship as package data


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
        [sys.executable, "-m", "ruff", "check", "--config", str(ROOT / "pyproject.toml"),
         "--select", "TID251", str(bad)],
        capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert result.stdout.count("TID251") == 2
