"""Shared fixtures: a moto S3 server over HTTP, settings for a throwaway home."""

import socket

import boto3
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_endpoint, monkeypatch, tmp_path, request):
    """Environment of aws mode against the moto server: a fresh bucket and a KMS key per test."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    bucket = "fe-lake-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    kms = boto3.client("kms", endpoint_url=moto_endpoint, region_name="us-east-1")
    key_id = kms.create_key(Description="fe lake")["KeyMetadata"]["KeyId"]
    return {
        "FE_MODE": "aws", "FE_HOME": str(tmp_path / "home"), "FE_S3_BUCKET": bucket, "FE_S3_PREFIX": "fe",
        "AWS_REGION": "us-east-1", "FE_S3_ENDPOINT_URL": moto_endpoint, "FE_KMS_KEY_ID": key_id,
        "FE_PII_HMAC_KEY": "a-test-secret-of-enough-length", "FE_WAREHOUSE": "duckdb",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    }
