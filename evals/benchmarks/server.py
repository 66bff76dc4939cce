"""Bounded loopback load on ``vidagent serve``: N concurrent chats, errors and latency percentiles.

The real command runs in a subprocess (tiny profile, so the figures are the server's and the
agent's own overhead plus tiny models, not a real planner's speed). One video is uploaded and
indexed, then ``clients`` threads each open their own session and ask ``rounds`` questions over
``POST /api/chat``, reading the event stream to its ``done``. A chat that errors, returns a non-200
or ends without an answer counts as an error.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from vidagent.evals.benchmarks import Benchmark, Measurement, Settings

QUESTIONS = ("When does the cyclist pass?", "What is the person riding?", "Is it daytime?")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(folder: Path, profile: str = "tiny", timeout: float = 180.0) -> Iterator[str]:
    """Run ``vidagent serve`` in a subprocess on a free loopback port; yield its base URL once it answers.

    Store, uploads and the server's log (``serve.log``) go in ``folder``; no API key.
    """
    import urllib.request

    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = folder / "serve.log"
    command = [
        sys.executable,
        "-m",
        "vidagent.app.cli",
        "serve",
        "--profile",
        profile,
        "--port",
        str(port),
        "--store",
        str(folder / "store.sqlite"),
        "--upload-dir",
        str(folder / "uploads"),
    ]
    with log.open("w") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "VIDAGENT_API_KEY": ""}
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url + "/api/videos", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:  # not listening yet
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vidagent serve did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _chat(client: object, video: str, rounds: int) -> list[tuple[float, bool]]:
    """One client: a new session, ``rounds`` questions; (latency s, ok) per question."""
    session = client.post(f"/api/videos/{video}/sessions").json()["session"]  # type: ignore[attr-defined]
    results = []
    for i in range(rounds):
        started = time.perf_counter()
        ok = False
        try:
            with client.stream(
                "POST",
                "/api/chat",
                json={  # type: ignore[attr-defined]
                    "video": video,
                    "session": session,
                    "question": QUESTIONS[i % len(QUESTIONS)],
                },
            ) as response:
                kinds = []
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        kinds.append(line[7:])
                ok = response.status_code == 200 and "answer" in kinds and kinds[-1] == "done"
        except Exception:  # a failed request is a measured error
            ok = False
        results.append((time.perf_counter() - started, ok))
    return results


def run(settings: Settings) -> list[Measurement]:
    import httpx

    from vidagent.media.sample_videos import sample_video

    rows: list[Measurement] = []
    with serving(Path(settings.workdir) / "serve") as url, httpx.Client(base_url=url, timeout=600) as client:
        with sample_video("bikes").open("rb") as handle:
            video = client.post("/api/videos", files={"file": ("bikes.mp4", handle, "video/mp4")}).json()[
                "id"
            ]
        job = client.post(f"/api/videos/{video}/index").json()
        while job["state"] in ("queued", "running"):
            time.sleep(0.2)
            job = client.get(f"/api/jobs/{job['id']}").json()
        if job["state"] != "done":
            raise RuntimeError(f"indexing failed: {json.dumps(job)}")
        _chat(client, video, 1)  # warm-up: models load
        for clients in (1, 4) if settings.quick else (1, 4, 8):
            rounds = 2 if settings.quick else 3
            started = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                futures = [pool.submit(_chat, client, video, rounds) for _ in range(clients)]
                outcomes = [r for future in futures for r in future.result()]
            wall = time.perf_counter() - started
            latencies = [t for t, _ in outcomes]
            errors = sum(not ok for _, ok in outcomes)
            extra = {
                "clients": clients,
                "chats": len(outcomes),
                "errors": errors,
                "throughput_per_s": round(len(outcomes) / wall, 3),
                "profile": "tiny",
            }
            rows.append(
                Measurement(
                    "server", f"{clients} clients p50", float(np.percentile(latencies, 50)), "s/chat", extra
                )
            )
            rows.append(
                Measurement("server", f"{clients} clients p95", float(np.percentile(latencies, 95)), "s/chat")
            )
            rows.append(Measurement("server", f"{clients} clients errors", float(errors), "chats"))
    return rows


BENCHMARK = Benchmark(
    "server", "loopback load on vidagent serve: concurrent chats, errors, p50/p95 latency", run
)
