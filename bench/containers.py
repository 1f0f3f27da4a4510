"""Container start overhead: an image job through freight's runtime vs `podman run --rm` of the same
image with the same flags, and vs a process job; plus image build + push of the example app image.

    .venv/bin/python bench/containers.py [N] [--rounds R]

Loops, interleaved in rounds (order alternating, so a busy machine slows them alike), each running
`true` to completion, one at a time:
- podman:    `podman run --rm` (runc, cgroupfs, network none, the same limits and ulimits) of the
             image, as a shell would run it: the peer, and the floor for a container;
- freight:   start + wait + release of an image attempt through ContainerRuntime (the shim, the
             wrapper, podman run --rm, the cgroup hook);
- process:   start + wait + release of /bin/true as a process attempt (no container).
Prints medians and ratios; writes bench/results/containers.json. Needs root, podman, runc,
docker-registry and busybox-static (scripts/system-deps.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from freight.config import load_settings
from freight.runtime import create_runtime, images
from freight.runtime.base import AttemptRequest, Container, Limits
from freight.runtime.container import ContainerRuntime, podman_base
from freight.runtime.registry import start_registry

RESULTS = Path(__file__).parent / "results" / "containers.json"
EXAMPLE = Path(__file__).parent.parent / "examples" / "images" / "hello"
LIMITS = Limits(cpus=1.0, memory=128 << 20, pids=64)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=5, help="attempts per loop per round")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="freight-bench-containers-"))
    settings = load_settings(
        {"FREIGHT_HOME": str(root / "home"), "FREIGHT_CGROUP_PARENT": f"freight-bench-{os.getpid()}"}
    )
    registry = start_registry(settings)
    settings = replace(settings, registry=registry.address)
    runtime = ContainerRuntime(create_runtime(settings), settings.home)
    try:
        started = time.perf_counter()
        pinned, _ = images.build(EXAMPLE, f"bench-hello-{os.getpid()}", settings)
        build_push = time.perf_counter() - started
        subprocess.run(
            [*podman_base("podman"), "pull", "-q", "--tls-verify=false", pinned],
            check=True,
            capture_output=True,
        )
        podman_argv = [
            *podman_base("podman"),
            "run", "--rm", "--network", "none", "--log-driver", "none",
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=64:64",
            "--memory", str(LIMITS.memory), "--memory-swap", str(LIMITS.memory),
            "--cpus", "1", "--pids-limit", "64", "--tls-verify=false", pinned, "true",
        ]  # fmt: skip

        def podman_run() -> None:
            subprocess.run(podman_argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

        def attempt(container: Container | None, argv: list[str]) -> None:
            attempt_id = f"b-{uuid.uuid4().hex[:12]}"
            request = AttemptRequest(
                attempt_id,
                argv,
                {"PATH": "/usr/bin:/bin"},
                None,
                LIMITS,
                root / "logs" / f"{attempt_id}.log",
                container=container,
            )
            handle = runtime.start(request)
            outcome = runtime.wait(handle)
            runtime.release(handle)
            assert outcome is not None and outcome.ok, outcome

        loops = {
            "podman run --rm": podman_run,
            "freight image job": lambda: attempt(Container(pinned), ["true"]),
            "freight process job": lambda: attempt(None, ["/bin/true"]),
        }
        times: dict[str, list[float]] = {name: [] for name in loops}
        for loop in loops.values():
            loop()  # warm: first pull, first slot, the hook written
        for number in range(args.rounds):
            order = list(loops) if number % 2 == 0 else list(reversed(loops))
            for name in order:
                for _ in range(args.n):
                    begin = time.perf_counter()
                    loops[name]()
                    times[name].append(time.perf_counter() - begin)
        medians = {name: statistics.median(values) for name, values in times.items()}
        base = medians["podman run --rm"]
        result = {
            "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
            "attempts_per_loop": args.n * args.rounds,
            "median_seconds": medians,
            "p90_seconds": {n: sorted(v)[int(len(v) * 0.9) - 1] for n, v in times.items()},
            "ratio_freight_to_podman": medians["freight image job"] / base,
            "ratio_freight_image_to_process_job": medians["freight image job"]
            / medians["freight process job"],
            "image_build_and_push_seconds": build_push,
        }
        for name, value in medians.items():
            print(f"{name:22s} median {value * 1000:8.1f} ms  ({value / base:.2f}x podman run --rm)")
        print(f"image build + push of examples/images/hello: {build_push:.1f} s")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {RESULTS}", file=sys.stderr)
    finally:
        runtime.destroy()
        registry.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
