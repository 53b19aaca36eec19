"""Serve inference latency and throughput: ``POST /v1/infer`` next to an echo deployment.

One local Ray + Serve instance holds both apps (same HTTP proxy, same fractional CPUs), so the
echo numbers are the baseline of the HTTP/proxy/handle path and the difference is our model.
Each is measured at concurrency 1 and 8 (threads with keep-alive clients); the in-process
``InferenceModel.infer`` call is measured too. Writes bench/results/bench_serve.json.

    .venv/bin/python bench/bench_serve.py [--requests 400] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import ray  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from ray import serve  # noqa: E402
from tqdm import tqdm  # noqa: E402

from serving.app import _typed, build_app  # noqa: E402
from serving.model import InferenceModel  # noqa: E402
from serving.testing import make_bundle  # noqa: E402
from training.registry import Registry  # noqa: E402

echo_api = FastAPI()


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
@serve.ingress(echo_api)
class Echo:
    """Returns the JSON body it got: the HTTP + proxy + replica baseline."""

    @echo_api.post("/")
    @_typed
    async def echo(self, request: Request) -> Any:
        return await request.json()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load(url: str, body: dict[str, Any], n: int, concurrency: int) -> dict[str, float]:
    """``n`` POSTs split over ``concurrency`` threads; latency percentiles and req/s."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    per = n // concurrency
    bar = tqdm(total=per * concurrency, desc=f"{url} c={concurrency}")

    def worker() -> None:
        mine = []
        with httpx.Client(timeout=30.0) as c:
            c.post(url, json=body)  # connect + warm
            for _ in range(per):
                t0 = time.perf_counter()
                r = c.post(url, json=body)
                mine.append((time.perf_counter() - t0) * 1e3)
                if r.status_code != 200:
                    with lock:
                        errors[0] += 1
                bar.update(1)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    bar.close()
    a = np.asarray(lat)
    return {
        "requests": float(len(a)),
        "errors": float(errors[0]),
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "req_per_s": len(a) / wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args()

    bundle, X = make_bundle(1)
    model = InferenceModel(bundle)
    x = X[10].tolist()
    prev = model.infer(X[9], None, "FEATURES_V1").log_posterior
    times = []
    for _ in range(2000):
        t0 = time.perf_counter()
        model.infer(x, prev, "FEATURES_V1")
        times.append((time.perf_counter() - t0) * 1e6)
    in_process = {
        "p50_us": float(np.percentile(times, 50)),
        "p99_us": float(np.percentile(times, 99)),
    }

    results: dict[str, Any] = {"in_process": in_process}
    with tempfile.TemporaryDirectory() as root:
        reg = Registry(root)
        reg.register(bundle)
        reg.promote()
        port = free_port()
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            serve.run(build_app({"registry": root}), name="nhmm", route_prefix="/")
            serve.run(Echo.bind(), name="echo", route_prefix="/echo")
            base = f"http://127.0.0.1:{port}"
            body = {"schema_version": "FEATURES_V1", "features": x, "prev_log_posterior": prev}
            for c in (1, 8):
                results[f"echo_c{c}"] = load(f"{base}/echo/", body, args.requests, c)
                results[f"infer_c{c}"] = load(f"{base}/v1/infer", body, args.requests, c)
        finally:
            serve.shutdown()
            ray.shutdown()

    out = {
        "bench": "bench_serve",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": results,
        "overhead_p50_ms": {
            f"c{c}": results[f"infer_c{c}"]["p50_ms"] - results[f"echo_c{c}"]["p50_ms"]
            for c in (1, 8)
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_serve.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"in-process infer: p50 {in_process['p50_us']:.0f} us, p99 {in_process['p99_us']:.0f} us")
    print(f"{'case':<10} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'errors':>6}")
    for name, r in results.items():
        if name != "in_process":
            print(
                f"{name:<10} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['req_per_s']:8.0f} "
                f"{int(r['errors']):6d}"
            )


if __name__ == "__main__":
    main()
