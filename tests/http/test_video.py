"""Videos uploaded to a real ``cargohold up`` (local disk) are probed before their row is written (issue 16):
the item answers its duration, frame rates, frame count, displayed size and codecs; a file that is not a
readable video, or declares frames over IMAGE_MAX_PIXELS, is refused with its reason (422) and leaves nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..support.api import assert_error, create_dataset, upload_results
from ..support.api_server import RunningServer
from ..support.videos import declaring, make_video


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = RunningServer(tmp_path_factory.mktemp("video") / "home", {}).start()
    try:
        yield running
    finally:
        running.stop()


def test_an_uploaded_video_is_probed(server: RunningServer) -> None:
    with server.client() as client:
        ds = create_dataset(client, "clips")["id"]
        [mp4, mkv] = upload_results(client, ds, [("turned.mp4", make_video(30, rotation=90, audio=True)),
                                                 ("hevc.mkv", make_video(30, container="matroska",
                                                                         codec="libx265"))])
        item = mp4["item"]
        assert (item["kind"], item["mime_type"], item["width"], item["height"]) == ("video", "video/mp4", 48, 64)
        assert item["video"] | {"bit_rate": 0} == {
            "duration": 1.2, "frame_rate": 25.0, "nominal_frame_rate": 25.0, "frame_count": 30,
            "frame_count_from": "container", "width": 48, "height": 64, "rotation": 90, "codec": "h264",
            "pixel_format": "yuv420p", "bit_rate": 0, "audio_codec": "aac"}
        assert mkv["item"]["video"]["codec"] == "hevc" and mkv["item"]["video"]["frame_count_from"] == "counted"
        listed = client.get(f"/datasets/{ds}/items").json()["items"]
        assert [i["video"]["frame_count"] for i in listed] == [30, 30]
        assert client.get(f"/items/{item['id']}").json()["video"] == item["video"]


@pytest.mark.reliability(kind="bad input", cases=3, what="videos that are not readable (truncated, not a video) "
                         "or declare 15,000 x 15,000 frames: 422 with the reason, nothing stored")
def test_unreadable_videos_are_refused_and_leave_nothing(server: RunningServer,
                                                         request: pytest.FixtureRequest) -> None:
    data = make_video(30)
    with server.client() as client:
        ds = create_dataset(client, "refused")["id"]
        for name, body, reason in [("half.mp4", data[: len(data) // 2], "not a readable video"),
                                   ("text.mp4", b"not a video at all", "not a readable video"),
                                   ("bomb.avi", declaring(15000, 15000), "IMAGE_MAX_PIXELS")]:
            answer = client.post(f"/datasets/{ds}/items", files=[("files", (name, body))])
            assert_error(answer, 422)
            assert reason in answer.text, answer.text
        assert client.get(f"/datasets/{ds}/items").json()["items"] == []
    public = Path(server.home) / "data" / "storage" / "cargohold-public"
    assert not list(public.rglob(".staging/*")), "a refused upload leaves no staging copy"
    request.node.user_properties.append(("reliability_result", (
        "a truncated MP4, a text file named .mp4 and an AVI declaring 15,000 x 15,000: each 422 naming why, "
        "no item, no staging copy")))
