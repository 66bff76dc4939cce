"""Every error vidagent raises on purpose. Each carries a one-line, user-facing message.

The CLI prints ``str(error)`` and exits with code 1; anything that is not a ``VidagentError``
is a bug and keeps its traceback.
"""

from __future__ import annotations


class VidagentError(Exception):
    """Base class: a clear, specific problem with the user's input or set-up."""


# --- video input -------------------------------------------------------------------------
class VideoError(VidagentError):
    """A video file cannot be used. ``path`` names the file."""

    def __init__(self, path: object, message: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


class VideoNotFound(VideoError):
    """The path does not exist or is not a regular file."""


class NotAMediaFile(VideoError):
    """FFmpeg cannot read the file as any media container."""


class NoVideoStream(VideoError):
    """The container has no video stream (e.g. an audio-only file)."""


class EmptyVideo(VideoError):
    """The video stream holds zero decodable frames."""


class CorruptVideo(VideoError):
    """Decoding failed before any requested frame could be read."""


class AbsurdDimensions(VideoError):
    """Width/height are zero, negative or beyond what we are willing to decode."""


class SpanOutOfRange(VideoError):
    """A requested time span or timestamp lies outside the video."""


# --- models ------------------------------------------------------------------------------
class ProfileError(VidagentError):
    """A profile file is missing, malformed, or names an unknown role."""


class ModelNotAvailable(VidagentError):
    """A checkpoint cannot be loaded (offline and not cached, bad path, wrong class).

    ``reason`` is the bare one-line why, without the advice the message adds around it.
    """

    def __init__(self, role: str, model_id: str, reason: str) -> None:
        self.role = role
        self.model_id = model_id
        self.reason = reason
        super().__init__(
            f"cannot load the {role!r} model {model_id!r}: {reason}. "
            f"Download it once with `hf download {model_id}` while online, "
            f"or point the profile's `{role}.id` at a local directory holding the checkpoint "
            f"(`vidagent models list` shows the active profile)."
        )
