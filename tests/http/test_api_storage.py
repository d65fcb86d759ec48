"""What an upload through the API leaves in the provider, read with the provider's own means (boto3, the file)."""

from __future__ import annotations

from ..support.api import (
    cli,
    content_key,
    create_dataset,
    random_bytes,
    read_object,
    sha256,
    stored_objects,
    unfinished_uploads,
    upload_one,
)
from ..support.api_server import RunningServer


def test_uploads_are_content_addressed_objects_in_the_provider(api_server: RunningServer) -> None:
    data = random_bytes(300_000, seed=20)
    large = random_bytes(9 * 1024 * 1024 + 123, seed=21)  # over 8 MiB: a multipart upload on S3
    weights = random_bytes(50_000, seed=22)
    with api_server.client() as client:
        first, second = create_dataset(client, "first")["id"], create_dataset(client, "second")["id"]
        one = upload_one(client, first, "one.bin", data)
        two = upload_one(client, first, "two.bin", data)  # the same bytes under another name
        three = upload_one(client, second, "three.jpg", data)  # ...and in another dataset
        big = upload_one(client, second, "big.bin", large)
        assert client.put("/files/models/w.bin", content=weights).status_code == 201

        assert one["sha256"] == two["sha256"] == three["sha256"] == sha256(data)
        assert len({one["id"], two["id"], three["id"]}) == 3
        objects = stored_objects(api_server)
        assert objects == {content_key(sha256(data)): len(data), content_key(sha256(large)): len(large)}, (
            "one object per distinct content, nothing left in .staging/")
        assert read_object(api_server, content_key(sha256(data))) == data
        assert read_object(api_server, content_key(sha256(large))) == large
        assert stored_objects(api_server, "private") == {"models/w.bin": len(weights)}
        assert read_object(api_server, "models/w.bin", "private") == weights
        assert unfinished_uploads(api_server) == []

        # Deleting items leaves the bytes to gc, which takes only what no item uses.
        assert client.delete(f"/datasets/{first}").status_code == 204
        assert client.delete(f"/items/{big['id']}").status_code == 204
        assert set(stored_objects(api_server)) == {content_key(sha256(data)), content_key(sha256(large))}
        listed = cli(api_server, "gc", "--older-than", "0", "--yes").stdout.splitlines()
        assert listed[:-1] == [f"{api_server.env.get('STORAGE_BUCKET_PREFIX', 'cargohold')}-public/"
                               f"{content_key(sha256(large))}\t{len(large)}\tno item uses it"], listed
        assert listed[-1] == f"deleted 1 objects, {len(large):,} bytes"
        assert stored_objects(api_server) == {content_key(sha256(data)): len(data)}
        assert client.get(f"/items/{three['id']}/content").content == data, "bytes another item uses stay"
        assert stored_objects(api_server, "private") == {"models/w.bin": len(weights)}
