"""Shared test set-up. Tests mirror the package: tests/<layer>/ for vidagent.<layer>; helpers
(e.g. ``from tests.synth import write_video``) are imported through the ``tests`` package."""

from __future__ import annotations

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
    from vidagent.models.hub import ModelHub
    from vidagent.models.profile import load_profile

    return ModelHub(load_profile("tiny"))


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray instance with 2 CPUs for one test module (start-up takes a few seconds)."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
