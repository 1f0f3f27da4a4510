"""Images: build from a Containerfile, push, list, inspect, remove, and pin a name to a digest.

A job names an image as NAME[:TAG] or NAME@sha256:...; before the job is placed, `pin` turns that
into an exact reference (REGISTRY/NAME@sha256:... when the registry has it, else the id of an image
in this node's local storage), so every attempt of the job runs the same bytes, and a name that
resolves to nothing is one clear error at submission. Nodes pull pinned references on first use
and keep them in podman's storage (the cache).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freight.config import Settings
from freight.errors import TransientError, UserError
from freight.runtime.container import podman_base
from freight.runtime.registry import RegistryClient, registry_address
from freight.runtime.registry_auth import auth_file

_NAME = re.compile(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_LOCAL_ID = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageRef:
    name: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        return self.name + (f"@{self.digest}" if self.digest else f":{self.tag or 'latest'}")


def parse_ref(text: str, where: str = "image") -> ImageRef:
    """NAME[:TAG][@sha256:HEX], without a registry host (freight's registry is implied)."""
    rest, _, digest = text.partition("@")
    name, tag = rest, None
    if ":" in rest.rsplit("/", 1)[-1]:
        name, _, tag = rest.rpartition(":")
    if (
        not _NAME.match(name)
        or (tag is not None and not _TAG.match(tag))
        or (digest and not _DIGEST.match(digest))
    ):
        raise UserError(
            f"{text!r} is not an image name",
            where=where,
            hint="write NAME, NAME:TAG or NAME@sha256:<64 hex> (lower-case letters, digits, . _ - /)",
        )
    return ImageRef(name, tag, digest or None)


def podman() -> str:
    binary = shutil.which("podman")
    if binary is None:
        raise UserError(
            "podman is not installed on this node",
            where="image",
            hint="install podman and runc (scripts/system-deps.sh) to run jobs with an image",
        )
    return binary


def _run(argv: list[str], what: str, *, capture: bool = True) -> str:
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=capture, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or "").strip().splitlines()
        raise TransientError(f"{what} failed: {detail[-1] if detail else f'exit {result.returncode}'}")
    return result.stdout or ""


def _local_id(name: str) -> str | None:
    result = subprocess.run(
        [*podman_base(podman()), "image", "inspect", "--format", "{{.Id}}", name],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    ident = result.stdout.strip()
    return ident if result.returncode == 0 and _LOCAL_ID.match(ident) else None


def pin(image: str, settings: Settings, where: str = "image") -> str:
    """The exact reference a job runs: REGISTRY/NAME@DIGEST, or a local image id. UserError if none."""
    if image.startswith(("sha256:",)) or _LOCAL_ID.match(image):
        ident = _local_id(image.removeprefix("sha256:"))
        if ident is None:
            raise UserError(f"image {image} is not in this node's storage", where=where)
        return ident
    host = image.split("/", 1)[0] if "/" in image else ""
    if "." in host or ":" in host or host == "localhost":
        return image  # a fully qualified reference (host/name...): podman pulls it as given
    ref = parse_ref(image, where)
    address = registry_address(settings)
    if address is not None:
        found = RegistryClient(address).manifest(ref.name, ref.reference)
        if found is not None:
            return f"{address}/{ref.name}@{found[0]}"
    ident = _local_id(f"localhost/{ref.name}:{ref.tag or 'latest'}" if not ref.digest else str(ref))
    if ident is not None:
        return ident
    where_looked = f"registry {address}" if address else "this node (no registry: run freight up --registry)"
    raise UserError(
        f"image {image} not found in {where_looked}",
        where=where,
        hint=f"build and push it: freight image build DIR -t {ref.name}",
    )


def build(directory: Path, name: str, settings: Settings) -> tuple[str, str]:
    """Build DIR's Containerfile (or Dockerfile) as NAME; push it when a registry is known.
    Returns (pinned reference, digest)."""
    ref = parse_ref(name, "-t")
    if not directory.is_dir():
        raise UserError(
            f"{directory} is not a directory", where="DIR", hint="give the folder holding a Containerfile"
        )
    containerfile = next(
        (directory / f for f in ("Containerfile", "Dockerfile") if (directory / f).is_file()), None
    )
    if containerfile is None:
        raise UserError(
            f"{directory} has no Containerfile", where="DIR", hint="write one (FROM scratch works offline)"
        )
    address = registry_address(settings)
    tag = ref.tag or "latest"
    target = f"{address}/{ref.name}:{tag}" if address else f"localhost/{ref.name}:{tag}"
    binary = podman()
    with tempfile.TemporaryDirectory() as tmp:
        context = _context(directory, Path(tmp) / "context")
        build_args = ["build", "--pull=never", "-q", "-f", str(context / containerfile.name), "-t", target]
        _run([*podman_base(binary), *build_args, str(context)], f"building {directory}")
    if address is None:
        ident = _local_id(target)
        assert ident is not None
        return ident, f"sha256:{ident}"
    with tempfile.TemporaryDirectory() as tmp:
        digest_file = Path(tmp) / "digest"
        _run(
            [
                *podman_base(binary),
                "push",
                "-q",
                "--tls-verify=false",
                *_authfile(),
                "--digestfile",
                str(digest_file),
                target,
            ],
            f"pushing {target}",
        )
        digest = digest_file.read_text().strip()
    return f"{address}/{ref.name}@{digest}", digest


def _authfile() -> list[str]:
    """podman's --authfile when registry logins exist (runtime/registry_auth.py)."""
    logins = auth_file()
    return ["--authfile", str(logins)] if logins.is_file() else []


def _context(directory: Path, into: Path) -> Path:
    """DIR copied, plus the host files its `.host-files` names ("HOST_PATH [NAME]" per line): images
    are built offline here, so a base such as busybox-static's binary comes from this machine."""
    shutil.copytree(directory, into, symlinks=True)
    listing = directory / ".host-files"
    if not listing.is_file():
        return into
    for number, line in enumerate(listing.read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        source = Path(words[0])
        name = words[1] if len(words) > 1 else source.name
        if len(words) > 2 or not source.is_file() or "/" in name or name in ("", ".", ".."):
            raise UserError(
                f"cannot copy {words[0]!r} into the build context",
                where=f"{listing}:{number}",
                hint="write HOST_PATH [NAME] naming an existing file (install it first)",
            )
        shutil.copy2(source, into / name)
    return into


@dataclass(frozen=True)
class ImageRow:
    name: str
    tag: str
    digest: str
    where: str


def list_images(settings: Settings) -> list[ImageRow]:
    """Images in the registry (every tag with its digest), else in this node's storage."""
    address = registry_address(settings)
    if address is not None:
        client = RegistryClient(address)
        rows = []
        for repo in client.repositories():
            for tag in client.tags(repo):
                found = client.manifest(repo, tag)
                if found is not None:
                    rows.append(ImageRow(repo, tag, found[0], address))
        return rows
    out = _run([*podman_base(podman()), "images", "--format", "json"], "listing images")
    rows = []
    for image in json.loads(out or "[]"):
        for full in image.get("Names") or []:
            name, _, tag = full.rpartition(":")
            rows.append(ImageRow(name.removeprefix("localhost/"), tag, image.get("Digest", ""), "local"))
    return rows


def inspect(image: str, settings: Settings) -> dict[str, Any]:
    ref = parse_ref(image, "IMAGE")
    address = registry_address(settings)
    if address is not None:
        found = RegistryClient(address).manifest(ref.name, ref.reference)
        if found is not None:
            return {
                "name": ref.name,
                "reference": ref.reference,
                "digest": found[0],
                "registry": address,
                "manifest": found[1],
            }
    ident = _local_id(f"localhost/{ref.name}:{ref.tag or 'latest'}")
    if ident is None:
        raise UserError(f"image {image} not found", where="IMAGE", hint="freight image ls lists the images")
    out = _run([*podman_base(podman()), "image", "inspect", ident], f"inspecting {image}")
    data: list[dict[str, Any]] = json.loads(out)
    return {"name": ref.name, "reference": ref.reference, "id": ident, "registry": None, "image": data[0]}


def remove(image: str, settings: Settings) -> str:
    """Delete IMAGE from the registry (its manifest) and from this node's storage. Returns what went."""
    ref = parse_ref(image, "IMAGE")
    address = registry_address(settings)
    gone = []
    if address is not None:
        client = RegistryClient(address)
        found = client.manifest(ref.name, ref.reference)
        if found is not None and client.delete(ref.name, found[0]):
            gone.append(f"{address}/{ref.name}@{found[0]}")
    for local in (
        f"localhost/{ref.name}:{ref.tag or 'latest'}",
        f"{address}/{ref.name}:{ref.tag or 'latest'}",
    ):
        if address is None and local.startswith("None"):
            continue
        result = subprocess.run(
            [*podman_base(podman()), "rmi", local], stdin=subprocess.DEVNULL, capture_output=True, check=False
        )
        if result.returncode == 0:
            gone.append(local)
    if not gone:
        raise UserError(f"image {image} not found", where="IMAGE", hint="freight image ls lists the images")
    return ", ".join(gone)


def default_command(pinned: str, settings: Settings) -> list[str]:
    """The image's own command (ENTRYPOINT + CMD), for a service deployed without one."""
    config: dict[str, Any] = {}
    address, _, rest = pinned.partition("/")
    if rest and "@" in rest:
        name, _, digest = rest.partition("@")
        found = RegistryClient(address).manifest(name, digest)
        config_ref = (found[1].get("config") or {}).get("digest") if found else None
        blob = RegistryClient(address).blob(name, config_ref) if config_ref else None
        config = (json.loads(blob).get("config") or {}) if blob else {}
    else:
        out = _run([*podman_base(podman()), "image", "inspect", pinned], f"inspecting {pinned}")
        config = json.loads(out)[0].get("Config") or {}
    command = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    if not command:
        raise UserError(f"image {pinned} has no command", where="--", hint="give the command after --")
    return [str(part) for part in command]
