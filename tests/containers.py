"""A test image built offline (busybox-static on an empty base) and pushed to a registry started for
the test session on a free 127.0.0.1 port; shared by the container tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from freight.config import Settings, load_settings
from freight.runtime import images
from freight.runtime.registry import LocalRegistry, start_registry

CONTAINERFILE = """FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/sh", "-c", "mkdir -p /www && echo ok > /www/healthz"]
CMD ["/bin/sh"]
"""


@dataclass
class BuiltImage:
    registry: LocalRegistry
    settings: Settings
    #: REGISTRY/NAME@sha256:...
    pinned: str
    name: str

    def remove(self) -> None:
        """Untag it from this node's podman store (the layers go once no name holds them)."""
        repository = self.pinned.split("@", 1)[0]
        names = [self.pinned, f"{repository}:latest"]
        subprocess.run(["podman", "rmi", "--force", "--ignore", *names], capture_output=True, check=False)


def build_test_image(root: Path) -> BuiltImage:
    home = root / "home"
    settings = load_settings({"FREIGHT_HOME": str(home)})
    registry = start_registry(settings)
    settings = replace(settings, registry=registry.address)
    context = root / "image"
    context.mkdir()
    (context / "Containerfile").write_text(CONTAINERFILE)
    shutil.copy2("/bin/busybox", context / "busybox")
    name = f"freight-test-{os.getpid()}"
    pinned, _ = images.build(context, name, settings)
    return BuiltImage(registry, settings, pinned, name)
