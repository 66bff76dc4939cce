"""Where vidagent keeps its files. Every directory is created on first use.

- ``data_dir()``: what the user would miss if deleted (the memory store). Default: the
  platform's user data directory (``~/.local/share/vidagent`` on Linux); env ``VIDAGENT_HOME``
  overrides it.
- ``cache_dir()``: what can be rebuilt (tiny checkpoints, dequantised GGUF models). Default:
  the platform's user cache directory (``~/.cache/vidagent`` on Linux); env ``VIDAGENT_CACHE``
  overrides it.
- ``tiny_dir()``: ``cache_dir()/tiny``, one sub-directory per role (see ``vidagent.models.tiny``).
- ``gguf_dir()``: ``cache_dir()/gguf``, GGUF checkpoints dequantised once and saved with
  ``save_pretrained`` (see ``vidagent.models.hub``).

``publish_dir`` moves a directory built in a temporary place to its final name atomically, so a
concurrent reader sees either no directory or a complete one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from platformdirs import user_cache_dir, user_data_dir

APP = "vidagent"
ENV_HOME = "VIDAGENT_HOME"
ENV_CACHE = "VIDAGENT_CACHE"


def _dir(env: str, default: str) -> Path:
    path = Path(os.environ.get(env) or default).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """User data (the store): ``$VIDAGENT_HOME`` or the platform's user data directory."""
    return _dir(ENV_HOME, user_data_dir(APP, appauthor=False))


def cache_dir() -> Path:
    """Rebuildable files: ``$VIDAGENT_CACHE`` or the platform's user cache directory."""
    return _dir(ENV_CACHE, user_cache_dir(APP, appauthor=False))


def tiny_dir() -> Path:
    """The tiny random-weight checkpoints, ``cache_dir()/tiny/<role>``."""
    path = cache_dir() / "tiny"
    path.mkdir(parents=True, exist_ok=True)
    return path


def gguf_dir() -> Path:
    """Dequantised GGUF checkpoints, ``cache_dir()/gguf/<name>``."""
    path = cache_dir() / "gguf"
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_dir(package: str) -> Path | None:
    """The directory of an installed Python package (``package:<name>`` ids), or None."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def package_folder(spec: str) -> Path:
    """``NAME`` or ``NAME/folder/inside`` of an installed package (a ``package:`` id without its
    prefix) as a directory; FileNotFoundError saying what to install otherwise."""
    package, _, inside = spec.partition("/")
    folder = package_dir(package)
    if folder is None:
        raise FileNotFoundError(
            f"Python package {package!r} is not installed (pip install {package.replace('_', '-')})"
        )
    if inside and not (folder / inside).is_dir():
        raise FileNotFoundError(f"package {package!r} has no folder {inside!r}")
    return folder / inside if inside else folder


def staging_dir(target: Path) -> Path:
    """A fresh empty directory next to ``target`` (same file system, so the rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))


def publish_dir(staged: Path, target: Path, *, replace: bool) -> bool:
    """Rename ``staged`` to ``target``; True when it was published.

    When ``target`` already exists it is kept (and ``staged`` removed) unless ``replace``; then
    the old directory is moved aside first and deleted after. Readers never see a partial
    directory, only possibly a moment where ``target`` is missing.
    """
    for _ in range(5):
        try:
            os.rename(staged, target)
            return True
        except OSError:
            if not target.exists():
                continue  # another writer moved it aside just now; try again
            if not replace:
                shutil.rmtree(staged, ignore_errors=True)
                return False
            trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            with contextlib.suppress(OSError):  # someone else replaced it first: retry the rename
                os.rename(target, trash / target.name)
            shutil.rmtree(trash, ignore_errors=True)
    shutil.rmtree(staged, ignore_errors=True)
    raise OSError(f"could not publish {target} (concurrent writers kept replacing it)")
