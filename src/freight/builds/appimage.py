"""An app's build output as an OCI image ("a container with the assets"), beside its static release.

An app whose freight.toml section says `image = { containerfile = "Containerfile" }` gets an image
built from that Containerfile after its release is published. The build context holds the
Containerfile and the published folder only (under its own relative path, e.g. `dist/`), never
node_modules or sources; `.host-files` in the package works as for `freight image build`. The image is
tagged `APP:BUILDHASH` (the first 16 hex of the build task's hash) and pushed to the registry, so the
same outputs map to the same tag, and a build whose tag the registry already holds does not build it
again.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from freight.builds.config import AppImage
from freight.config import Settings
from freight.errors import UserError
from freight.runtime import images
from freight.runtime.registry import RegistryClient, registry_address

_NAME_PART = re.compile(r"[^a-z0-9._-]+")


def image_name(app: str) -> str:
    """A registry repository name for the app (lower case; other characters become '-')."""
    name = _NAME_PART.sub("-", app.lower()).strip("-._")
    return name or "app"


def ship_image(
    settings: Settings,
    app: str,
    package_dir: Path,
    publish_folder: str,
    spec: AppImage,
    build_hash: str,
) -> str:
    """Build (or find) the app's image for this build hash; returns REGISTRY/NAME@sha256:...
    (or a local image id when no registry is known). UserError when the Containerfile is missing."""
    containerfile = package_dir / spec.containerfile
    if not containerfile.is_file():
        raise UserError(
            f"{containerfile} does not exist",
            where="freight.toml image.containerfile",
            hint="write the Containerfile, or drop `image` from the app's section",
        )
    name, tag = image_name(app), build_hash[:16]
    address = registry_address(settings)
    if address is not None:
        found = RegistryClient(address).manifest(name, tag)
        if found is not None:
            return f"{address}/{name}@{found[0]}"
    with tempfile.TemporaryDirectory(prefix="freight-app-image-") as tmp:
        context = Path(tmp) / "context"
        context.mkdir()
        shutil.copy2(containerfile, context / "Containerfile")
        source = package_dir / publish_folder
        if source.is_dir():
            shutil.copytree(source, context / publish_folder, symlinks=True)
        host_files = package_dir / ".host-files"
        if host_files.is_file():
            shutil.copy2(host_files, context / ".host-files")
        pinned, _ = images.build(context, f"{name}:{tag}", settings)
    return pinned
