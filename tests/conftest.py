"""Shared test set-up."""

from __future__ import annotations

import sys
from pathlib import Path

# Test helpers (e.g. `from synth import write_video`) live next to the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))


import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_vidagent_dirs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never touch the user's data or cache dirs: one temporary home per session.

    Tiny checkpoints are built once per session into it (they take ~1 s to build).
    """
    root = tmp_path_factory.mktemp("vidagent")
    os.environ.setdefault("VIDAGENT_CACHE", str(root / "cache"))
    os.environ["VIDAGENT_HOME"] = str(root / "home")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_hub():  # -> ModelHub over the tiny profile, shared by the session
    from vidagent.hub import ModelHub
    from vidagent.profile import load_profile

    return ModelHub(load_profile("tiny"))


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray instance with 2 CPUs for one test module (start-up takes a few seconds)."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
