"""The gateway over HTTP: cache headers, ETag/304, gzip, SPA fallback, routing, deploy and rollback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from freight.builds.api import Builds
from freight.builds.gateway import IMMUTABLE, accepts_gzip, serving
from freight.builds.releases import is_immutable, publish
from freight.builds.store import Route
from freight.jobs.service import JobService

BIG_JS = "export function f(x){return x*2}\n" * 200


def site(root: Path, version: str, bundle: str) -> Path:
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(f'<html><script src="/web/assets/{bundle}"></script>{version}</html>')
    (root / "assets" / bundle).write_text(BIG_JS + f"// {version}\n")
    (root / "robots.txt").write_text("User-agent: *\n")
    return root


@pytest.fixture
def client(builds: Builds, tmp_path: Path) -> Iterator[tuple[httpx.Client, Builds, list[str]]]:
    ids = []
    for version, bundle in (("v1", "main-AAAA1111.js"), ("v2", "main-BBBB2222.js")):
        rel, _ = publish(builds.objects, builds.store, "web", site(tmp_path / version, version, bundle))
        ids.append(rel.id)
    admin = tmp_path / "admin"
    admin.mkdir()
    (admin / "index.html").write_text("<html>admin</html>")
    admin_release, _ = publish(builds.objects, builds.store, "admin", admin)
    builds.store.set_route(Route("web", (), "/web/", True))
    builds.store.set_route(Route("admin", ("admin.example.test",), "/admin/", False))
    builds.deploy("web", ids[0])
    builds.deploy("admin", admin_release.id)
    may_preview = lambda request: request.headers.get("authorization") == "Bearer ok"  # noqa: E731
    with serving(builds.gateway(ttl=0, may_preview=may_preview)) as url, httpx.Client(base_url=url) as http:
        yield http, builds, ids


def test_cache_headers_etag_and_gzip(client: tuple[httpx.Client, Builds, list[str]]) -> None:
    http, _, _ = client
    page = http.get("/web/")
    assert page.status_code == 200 and "v1" in page.text
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["content-type"].startswith("text/html")
    asset = http.get("/web/assets/main-AAAA1111.js")
    assert asset.status_code == 200 and asset.headers["cache-control"] == IMMUTABLE
    assert asset.headers["content-encoding"] == "gzip" and asset.headers["vary"] == "Accept-Encoding"
    assert asset.text.startswith(BIG_JS)  # httpx undid the gzip
    assert int(asset.headers["content-length"]) < len(BIG_JS) / 5
    plain = http.get("/web/assets/main-AAAA1111.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers and int(plain.headers["content-length"]) > len(BIG_JS)
    assert plain.headers["etag"] != asset.headers["etag"]
    again = http.get("/web/assets/main-AAAA1111.js", headers={"if-none-match": asset.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["cache-control"] == IMMUTABLE
    assert http.get("/web/", headers={"if-none-match": page.headers["etag"]}).status_code == 304
    robots = http.get("/web/robots.txt")
    assert robots.headers["cache-control"] == "no-cache"  # not hashed: always revalidated
    head = http.head("/web/assets/main-AAAA1111.js")
    assert head.status_code == 200 and head.content == b""


def test_spa_fallback_routing_and_404s(client: tuple[httpx.Client, Builds, list[str]]) -> None:
    http, _, _ = client
    deep = http.get("/web/orders/42", headers={"accept": "text/html"})
    assert deep.status_code == 200 and "v1" in deep.text and deep.headers["cache-control"] == "no-cache"
    assert http.get("/web/assets/missing-ZZZZ9999.js").status_code == 404  # a missing asset is no page
    redirect = http.get("/web", follow_redirects=False)
    assert redirect.status_code == 308 and redirect.headers["location"] == "/web/"
    by_host = http.get("/", headers={"host": "admin.example.test"})
    assert by_host.status_code == 200 and "admin" in by_host.text
    assert http.get("/settings", headers={"host": "admin.example.test"}).status_code == 404  # spa = false
    assert http.get("/nowhere/").status_code == 404
    assert http.get("/_freight/health").text == "ok"


def test_deploy_rollback_and_earlier_assets_stay_reachable(
    client: tuple[httpx.Client, Builds, list[str]],
) -> None:
    http, builds, (_v1, v2) = client
    old_page = http.get("/web/").text
    builds.deploy("web", v2)
    assert "v2" in http.get("/web/").text
    # A tab opened before the deploy still loads its bundle.
    stale = http.get("/web/assets/main-AAAA1111.js")
    assert stale.status_code == 200 and stale.headers["cache-control"] == IMMUTABLE
    assert http.get("/web/assets/main-BBBB2222.js").status_code == 200
    builds.rollback("web")
    assert http.get("/web/").text == old_page
    assert http.get(f"/_freight/releases/web/{v2}/").status_code == 401  # previews are not public
    preview = http.get(f"/_freight/releases/web/{v2}/", headers={"Authorization": "Bearer ok"})
    assert preview.status_code == 200 and "v2" in preview.text


def test_accepts_gzip() -> None:
    assert accepts_gzip("gzip, deflate, br")
    assert accepts_gzip("br;q=1.0, gzip;q=0.8")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("identity")
    assert not accepts_gzip(None)


@pytest.fixture
def served(builds: Builds) -> Iterator[str]:
    with serving(builds.gateway(ttl=0)) as url:
        yield url


def test_built_apps_deployed_and_rolled_back_through_a_real_server(
    ws: Path, platform: JobService, builds: Builds, served: str
) -> None:
    first = builds.build(platform, ws, run_options=None)
    assert first.ok
    release_one = next(r["release"] for r in first.releases if r["app"] == "app-03")
    builds.deploy("app-03", release_one)
    with httpx.Client(base_url=served) as http:
        page = http.get("/app-03/")
        assert page.status_code == 200
        old_bundle = re.search(r"/app-03/assets/main-[A-Z0-9]+\.js", page.text)
        assert old_bundle is not None
        js = http.get(old_bundle.group(0))
        assert js.status_code == 200 and js.headers["cache-control"] == IMMUTABLE
        assert js.headers["content-type"].startswith("text/javascript")

        (ws / "apps/app-03/src/main.js").open("a").write("export const v2 = 'second';\n")
        second = builds.build(platform, ws)
        release_two = next(r["release"] for r in second.releases if r["app"] == "app-03")
        assert release_two != release_one
        builds.deploy("app-03")  # the newest release
        new_page = http.get("/app-03/").text
        assert old_bundle.group(0) not in new_page
        assert http.get(old_bundle.group(0)).status_code == 200  # still reachable after the deploy

        builds.rollback("app-03")
        assert http.get("/app-03/").text == page.text
        assert [r.release.id for r in builds.releases("app-03")][:2] == [release_two, release_one]
        assert builds.releases("app-03")[1].current_in == ("prod",)


def test_hashed_asset_names() -> None:
    js = "text/javascript"
    assert is_immutable("assets/main-DNIJQKAV.js", js)  # esbuild: base32, may hold no digit
    assert is_immutable("assets/main-5FQKX2ZT.js.map", "application/json")
    assert is_immutable("static/js/app.3f9a1c2b.js", js)  # webpack: hex
    assert is_immutable("assets/index-Bq4pZ0mX.js", js)  # vite: mixed case
    assert not is_immutable("assets/my-component12.js", js)
    assert not is_immutable("assets/vendor-react.js", js)
    assert not is_immutable("index-DNIJQKAV.html", "text/html")  # HTML is never immutable
    assert is_immutable("fonts/inter.woff2", "font/woff2", ["fonts/**"])  # the app says so
