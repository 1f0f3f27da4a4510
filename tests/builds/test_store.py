"""Releases and deployments in the state store, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest

from freight.builds.releases import load_manifest, publish
from freight.builds.store import TABLES, BuildStore, Release
from freight.config import Settings
from freight.errors import ConflictError, NotFoundError, UserError
from freight.storage.objectstore import ObjectStore


def release(app: str, rid: str, at: float) -> Release:
    return Release(app, rid, at, f"builds/releases/{app}/{rid}.json", None, None, 1, 10)


@pytest.fixture
def store(store_settings: Settings) -> BuildStore:
    opened = BuildStore.open(store_settings)
    yield opened  # type: ignore[misc]
    opened.close()


def test_tables_are_prefixed() -> None:
    assert all(name.startswith("build_") for name in TABLES)


def test_deploy_rollback_walks_back_through_history(store: BuildStore) -> None:
    for i, rid in enumerate(["ra", "rb", "rc"]):
        assert store.add_release(release("shop", rid, 100.0 + i))
    assert not store.add_release(release("shop", "ra", 999.0))  # immutable: recorded once
    assert [r.id for r in store.releases("shop")] == ["rc", "rb", "ra"]
    with pytest.raises(NotFoundError):
        store.rollback("shop", "prod")
    assert store.deploy("shop", "prod", "ra") is not None
    assert store.deploy("shop", "prod", "rb") is not None
    third = store.deploy("shop", "prod", "rc")
    assert third is not None and third.previous_release_id == "rb"
    assert store.deploy("shop", "prod", "rc") is None  # already current: nothing changes
    assert store.rollback("shop", "prod").release_id == "rb"
    assert store.rollback("shop", "prod").release_id == "ra"
    with pytest.raises(ConflictError, match="no earlier release"):
        store.rollback("shop", "prod")
    assert store.current("prod") == {"shop": "ra"}
    assert store.current("staging") == {}
    actions = [(d.action, d.release_id) for d in store.history("shop", "prod")]
    assert actions == [
        ("rollback", "ra"),
        ("rollback", "rb"),
        ("deploy", "rc"),
        ("deploy", "rb"),
        ("deploy", "ra"),
    ]
    with pytest.raises(NotFoundError):
        store.deploy("shop", "prod", "nope")


def test_release_prefix_lookup(store: BuildStore) -> None:
    store.add_release(release("web", "r1234aa", 1.0))
    store.add_release(release("web", "r1234bb", 2.0))
    assert store.release("web", "r1234a").id == "r1234aa"
    with pytest.raises(NotFoundError, match="several"):
        store.release("web", "r1234")


def test_concurrent_deploys_stay_a_consistent_chain(store: BuildStore) -> None:
    ids = [f"r{i:02d}" for i in range(8)]
    for i, rid in enumerate(ids):
        store.add_release(release("api", rid, float(i)))
    errors: list[BaseException] = []

    def deploy(rid: str) -> None:
        try:
            store.deploy("api", "prod", rid)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deploy, args=(rid,)) for rid in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    history = list(reversed(store.history("api", "prod")))
    assert len(history) == 8
    # Each switch replaced exactly what the one before it installed: no lost update.
    assert history[0].previous_release_id is None
    for before, after in itertools.pairwise(history):
        assert after.previous_release_id == before.release_id
    assert store.current("prod")["api"] == history[-1].release_id


def test_publish_is_content_addressed_and_idempotent(store: BuildStore, tmp_path: Path) -> None:
    objects = ObjectStore((tmp_path / "objects").as_uri())
    site = tmp_path / "dist"
    (site / "assets").mkdir(parents=True)
    (site / "index.html").write_text("<html>hi</html>")
    (site / "assets" / "main-AB12CD34.js").write_text("console.log('x');" * 40)
    (site / "favicon.ico").write_bytes(b"\x00\x01")
    first, new = publish(objects, store, "web", site, task_hash="h", commit="c")
    assert new and first.files == 3
    again, new_again = publish(objects, store, "web", site)
    assert again.id == first.id and not new_again
    manifest = load_manifest(objects, "web", first.id)
    assert manifest.files["assets/main-AB12CD34.js"].immutable
    assert manifest.files["assets/main-AB12CD34.js"].gzip_size is not None
    assert not manifest.files["index.html"].immutable and not manifest.files["favicon.ico"].immutable
    (site / "index.html").write_text("<html>changed</html>")
    second, _ = publish(objects, store, "web", site)
    assert second.id != first.id
    blobs = [k for k in objects.list("builds/blobs") if not k.endswith(".gz")]
    assert len(blobs) == 4  # the unchanged files are stored once
    with pytest.raises(UserError, match="nothing to publish"):
        publish(objects, store, "web", tmp_path / "missing")


def test_release_prefix_is_literal_and_env_names_are_checked(store: BuildStore) -> None:
    store.add_release(release("web", "r1234aa", 1.0))
    for pattern in ("%", "_", "r1234_a"):
        with pytest.raises(NotFoundError, match="has no release"):
            store.release("web", pattern)
    for env in ("bad env", "", "-x", "p/rod"):
        with pytest.raises(UserError, match="is not an environment name"):
            store.deploy("web", env, "r1234aa")
        with pytest.raises(UserError, match="is not an environment name"):
            store.rollback("web", env)
    assert store.history("web") == []


def test_deploy_without_a_release_takes_what_the_last_build_produced(settings: Settings) -> None:
    from freight.builds.api import Builds

    def build_run(run_id: str, at: float, release_id: str) -> dict[str, object]:
        summary = {"releases": [{"app": "shop", "release": release_id, "new": False, "files": 1}]}
        return {"id": run_id, "workspace": "/ws", "started_at": at, "status": "ok", "summary": summary}

    with Builds.open(settings) as builds:
        for i, rid in enumerate(["rold", "rsale"]):
            builds.store.add_release(release("shop", rid, 100.0 + i))
        assert builds.deploy("shop")[0] == "rsale"  # no build recorded: the newest release
        builds.store.record_run(build_run("b1", 200.0, "rsale"), [])
        builds.store.record_run(build_run("b2", 300.0, "rold"), [])  # the sale reverted: a cache hit
        assert builds.deploy("shop")[0] == "rold"
        assert builds.deploy("shop", "rsale")[0] == "rsale"  # a named release wins
