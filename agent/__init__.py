"""vidagent: answer questions about videos with image-language foundation models.

Public names are imported lazily so `import vidagent` stays fast (no torch until needed).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "VideoAgent": "vidagent.agent.api",
    "Answer": "vidagent.agent.api",
    "Evidence": "vidagent.core.evidence",
    "Video": "vidagent.media.video",
    "VideoMeta": "vidagent.media.video",
    "Frames": "vidagent.media.video",
    "ModelHub": "vidagent.models.hub",
    "load_profile": "vidagent.models.profile",
    "Profile": "vidagent.models.profile",
    "VidagentError": "vidagent.core.errors",
    "VideoError": "vidagent.core.errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vidagent' has no attribute {name!r}")
