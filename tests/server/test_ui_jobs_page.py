"""The UI's jobs page: its queue menu comes from the queues table (names only, no count of jobs),
limited to what the signed-in token may use; its rows are one keyset page."""

from __future__ import annotations

from tests.server.conftest import Api


def test_the_queue_menu_lists_the_queues_this_token_may_use(api: Api, queue: str) -> None:
    other = f"{queue}-other"
    for name in (queue, other):
        assert api.post("/api/v1/jobs", {"command": ["true"], "queue": name}).status_code == 201
    scoped = api.token(f"ui-{queue}", queues=[queue])
    client = api.client
    try:
        client.cookies.set("freight_token", api.admin)
        page = client.get("/jobs")
        assert page.status_code == 200
        assert f'<option value="{queue}"' in page.text and f'<option value="{other}"' in page.text
        client.cookies.set("freight_token", scoped)
        page = client.get("/jobs")
        assert f'<option value="{queue}"' in page.text and f'<option value="{other}"' not in page.text
        assert api.service.queue_names() == sorted(api.service.queue_names())
    finally:
        client.cookies.clear()
