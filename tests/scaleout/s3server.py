"""A real S3 protocol server on loopback: moto's server mode (`python -m moto.server`), one per
test module. Never a mock inside the code: the app talks HTTP to it like to any object store."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from tests.conftest import free_port

BUCKET = "allervers-media-test"
KEY_ID, SECRET = "testing-key-id", "testing-secret-key"


class S3Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self) -> "S3Server":
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("moto server exited")
            try:
                httpx.get(self.url + "/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start")
                time.sleep(0.2)
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)

    def fresh_bucket(self, name: str = BUCKET) -> str:
        s3 = self.client()
        try:
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket=name).get("Contents", [])]
            for key in keys:
                s3.delete_object(Bucket=name, Key=key)
        except s3.exceptions.NoSuchBucket:
            s3.create_bucket(Bucket=name)
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})
        return name

    def keys(self, name: str = BUCKET) -> list[str]:
        return sorted(o["Key"] for o in self.client().list_objects_v2(Bucket=name).get("Contents", []))

    def settings(self) -> dict:
        return {"media_backend": "s3", "s3_endpoint_url": self.url, "s3_bucket": BUCKET,
                "s3_access_key_id": KEY_ID, "s3_secret_access_key": SECRET}
