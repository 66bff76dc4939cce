"""Performance benchmarks behind ``vidagent bench``: one module per area, each a ``BENCHMARK``.

A benchmark is a function ``run(settings) -> list[Measurement]``. Speed and memory targets
live here, never in timed tests. Figures (with the command that produced them) are written
to evals/BENCHMARKS.md by hand from the JSON/markdown this prints.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    quick: bool = False  # smaller inputs, for a smoke run
    device: str = "cpu"  # "cpu" or "cuda"
    full_size: bool = False  # the gpu profile's architectures at full size (random weights)
    workdir: str = ""  # scratch folder for generated videos and stores


@dataclass(frozen=True)
class Measurement:
    benchmark: str
    case: str
    value: float
    unit: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    run: Callable[[Settings], list[Measurement]]


def synchronize(device: str) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so wall-clock timings are real."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def flush_denormals() -> None:
    """Compute denormal floats as zero in this process, as benchmarks of random weights must.

    Random weights can drive activations into the denormal range (below 1.2e-38 in float32),
    which x86 CPUs compute one to two orders of magnitude slower: SAM ViT-B's image encoder takes
    91 s with them and 6.7 s without on the 2-core box. Trained checkpoints rarely produce
    denormals, so without this the CPU figures would measure an artefact of the random values,
    not the architecture. ``vidagent bench`` calls it, as does every case it runs in a subprocess.
    """
    import torch

    torch.set_flush_denormal(True)


def discover() -> dict[str, Benchmark]:
    found: dict[str, Benchmark] = {}
    for module in pkgutil.iter_modules(__path__):
        bench = getattr(importlib.import_module(f"{__name__}.{module.name}"), "BENCHMARK", None)
        if isinstance(bench, Benchmark):
            found[bench.name] = bench
    return dict(sorted(found.items()))


def environment() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpus": __import__("os").cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def to_markdown(rows: list[Measurement]) -> str:
    lines = ["| benchmark | case | value | unit | details |", "| --- | --- | ---: | --- | --- |"]
    for r in rows:
        details = ", ".join(f"{k}={v}" for k, v in r.extra.items())
        lines.append(f"| {r.benchmark} | {r.case} | {r.value:.4g} | {r.unit} | {details} |")
    return "\n".join(lines)


def to_json(rows: list[Measurement]) -> str:
    return json.dumps({"environment": environment(), "results": [asdict(r) for r in rows]}, indent=2)


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MiB): VmHWM, which restarts at exec.

    ``getrusage``'s ``ru_maxrss`` is not used: Linux carries it across ``exec`` from the
    forking parent, so a child of a big process would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
