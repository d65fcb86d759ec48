"""Load on a running cargohold: content, previews, listings and uploads, for ``tests/system/test_load.py``.

Run by locust in a process of its own (gevent monkey-patches the interpreter: never import this
module, or locust, into pytest's process). What to ask for comes from the JSON file named by
``CARGOHOLD_LOAD_PLAN``: ``{"token": ..., "dataset": id, "items": [[id, size, is_image], ...]}``.

Every answer is checked, not only its status: content has the item's size, a preview is a JPEG,
a listing page is a page of that dataset, an upload answers ``created`` with the bytes' SHA-256.
A request that fails any of these counts as a failure in locust's statistics.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import uuid
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, events, task
from locust.env import Environment

PLAN: dict[str, Any] = json.loads(Path(os.environ["CARGOHOLD_LOAD_PLAN"]).read_text(encoding="utf-8"))
ITEMS: list[tuple[int, int, bool]] = [(int(i), int(size), bool(image)) for i, size, image in PLAN["items"]]
IMAGES = [item for item in ITEMS if item[2]]
DATASET = int(PLAN["dataset"])
PREVIEW_BOXES = (128, 256, 384)
_environment: list[Environment] = []


@events.init.add_listener
def _keep(environment: Environment, **_: Any) -> None:
    _environment.append(environment)


@events.quit.add_listener
def _write_errors(**_: Any) -> None:
    """Each failure and its count, for the test (``--json-file`` holds counts only, and replaces the summary)."""
    runner = _environment[0].runner if _environment else None
    if runner is not None and os.environ.get("CARGOHOLD_LOAD_ERRORS"):
        errors = [{"request": f"{e['method']} {e['name']}", "error": e["error"], "count": e["occurrences"]}
                  for e in runner.stats.serialize_errors().values()]
        Path(os.environ["CARGOHOLD_LOAD_ERRORS"]).write_text(json.dumps(errors, indent=1), encoding="utf-8")


class Client(FastHttpUser):
    wait_time = between(0.1, 0.5)
    network_timeout = 120.0
    connection_timeout = 30.0

    def on_start(self) -> None:
        self.auth = {"Authorization": f"Bearer {PLAN['token']}"}
        self.cursor: str | None = None

    @task(10)
    def content(self) -> None:
        item_id, size, _ = random.choice(ITEMS)
        with self.client.get(f"/api/v1/items/{item_id}/content", headers=self.auth, name="content",
                             catch_response=True) as answer:
            if answer.status_code != 200 or len(answer.content or b"") != size:
                answer.failure(f"content {item_id}: {answer.status_code}, {len(answer.content or b'')} of {size} bytes")

    @task(6)
    def preview(self) -> None:
        item_id, _, _ = random.choice(IMAGES)
        box = random.choice(PREVIEW_BOXES)
        with self.client.get(f"/api/v1/items/{item_id}/preview?w={box}&h={box}", headers=self.auth, name="preview",
                             catch_response=True) as answer:
            body = answer.content or b""
            if answer.status_code != 200 or not body.startswith(b"\xff\xd8"):
                answer.failure(f"preview {item_id} {box}: {answer.status_code}, {body[:80]!r}")

    @task(3)
    def listing(self) -> None:
        url = f"/api/v1/datasets/{DATASET}/items?limit=100" + (f"&cursor={self.cursor}" if self.cursor else "")
        with self.client.get(url, headers=self.auth, name="listing", catch_response=True) as answer:
            try:
                page = json.loads(answer.content or b"")
                ok = answer.status_code == 200 and all(i["dataset_id"] == DATASET for i in page["items"])
            except (ValueError, KeyError, TypeError):
                ok, page = False, {}
            if not ok or not page.get("items"):
                answer.failure(f"listing: {answer.status_code}, {(answer.content or b'')[:200]!r}")
                self.cursor = None
                return
            self.cursor = page["next_cursor"]  # walk the dataset page by page, then start again

    @task(1)
    def upload(self) -> None:
        data = random.randbytes(random.randint(1, 256) * 1024)
        name = f"load-{uuid.uuid4().hex}.bin"
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        headers = {**self.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}
        with self.client.post(f"/api/v1/datasets/{DATASET}/items", data=body, headers=headers,
                              name="upload", catch_response=True) as answer:
            try:
                (result,) = json.loads(answer.content or b"")["results"]
                ok = (answer.status_code == 201 and result["status"] == "created"
                      and result["item"]["sha256"] == hashlib.sha256(data).hexdigest())
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                answer.failure(f"upload: {answer.status_code}, {(answer.content or b'')[:200]!r}")
