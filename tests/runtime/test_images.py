"""Images and the registry: names, builds from a context with host files, ls, inspect, rm, pinning."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from freight.config import load_settings
from freight.errors import UserError
from freight.runtime import images
from freight.runtime.registry import RegistryClient, registry_address, start_registry
from tests.containers import CONTAINERFILE, BuiltImage


@pytest.mark.parametrize(
    ("text", "name", "tag", "digest"),
    [
        ("hello", "hello", None, None),
        ("team/app:v1.2", "team/app", "v1.2", None),
        ("hello@sha256:" + "a" * 64, "hello", None, "sha256:" + "a" * 64),
    ],
)
def test_image_names(text: str, name: str, tag: str | None, digest: str | None) -> None:
    assert images.parse_ref(text) == images.ImageRef(name, tag, digest)


@pytest.mark.parametrize("text", ["Hello", "hello:", "hello@sha256:abc", "a b", "-x"])
def test_bad_image_names_are_one_error(text: str) -> None:
    with pytest.raises(UserError, match="is not an image name"):
        images.parse_ref(text, "--image")


def test_a_bad_host_files_line_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "Containerfile").write_text("FROM scratch\n")
    (tmp_path / ".host-files").write_text("# comment\n/no/such/file\n")
    settings = load_settings({"FREIGHT_HOME": str(tmp_path / "home")})
    with pytest.raises(UserError) as caught:
        images.build(tmp_path, "x", settings)
    assert caught.value.where == f"{tmp_path / '.host-files'}:2"


def test_a_folder_without_containerfile_is_refused(tmp_path: Path) -> None:
    settings = load_settings({"FREIGHT_HOME": str(tmp_path / "home")})
    with pytest.raises(UserError, match="has no Containerfile"):
        images.build(tmp_path, "x", settings)


def test_ls_inspect_rm_against_the_registry(test_image: BuiltImage, tmp_path: Path) -> None:
    settings = test_image.settings
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text(CONTAINERFILE)
    shutil.copy2("/bin/busybox", context / "busybox")
    name = f"{test_image.name}-rm"
    pinned, digest = images.build(context, f"{name}:v1", settings)
    assert pinned == f"{test_image.registry.address}/{name}@{digest}"
    rows = {(row.name, row.tag): row.digest for row in images.list_images(settings)}
    assert rows[(name, "v1")] == digest and (test_image.name, "latest") in rows
    assert images.inspect(f"{name}:v1", settings)["digest"] == digest
    assert images.pin(f"{name}:v1", settings) == pinned
    assert images.pin(f"{name}@{digest}", settings) == pinned
    images.remove(f"{name}:v1", settings)
    assert RegistryClient(test_image.registry.address).manifest(name, "v1") is None
    with pytest.raises(UserError, match="not found"):
        images.pin(f"{name}:v1", settings)


def test_the_local_registry_is_found_while_it_runs(tmp_path: Path) -> None:
    settings = load_settings({"FREIGHT_HOME": str(tmp_path / "home")})
    assert registry_address(settings) is None
    registry = start_registry(settings)
    try:
        assert registry_address(settings) == registry.address
        assert (settings.home / "registry" / "data").is_dir()
        assert registry_address(replace(settings, registry="elsewhere:5000")) == "elsewhere:5000"
    finally:
        registry.stop()
    assert registry_address(settings) is None
