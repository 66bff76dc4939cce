"""Fixtures shared by the tool tests: a fresh store over the session's tiny hub, one torch thread."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidagent.media.store import Store
from vidagent.tools.base import ToolContext


@pytest.fixture
def ctx(tmp_path: Path, tiny_hub) -> ToolContext:
    """A ToolContext over the tiny profile with its own empty store (modules may override it)."""
    return ToolContext(hub=tiny_hub, store=Store(tmp_path / "s.sqlite"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and lose a lot when the cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
