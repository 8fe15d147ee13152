"""Secrets from AWS Secrets Manager, read once when the platform loads.

A secret is named by its id (name or ARN), optionally followed by `#key` to take one key of a
JSON secret (`arn:...:secret:fe-redshift#password`). Errors name the setting and the secret id,
never a value: a value read here is returned and nothing else is done with it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import boto3
from botocore.exceptions import BotoCoreError, ClientError


class SecretUnavailable(LookupError):
    """A named secret could not be read; the message names the setting and the secret id."""


@contextmanager
def _response_bodies_unlogged() -> Iterator[None]:
    """botocore logs every response body at DEBUG: not the ones that carry a secret."""
    parsers = logging.getLogger("botocore.parsers")
    drop_bodies = _DropResponseBodies()
    parsers.addFilter(drop_bodies)
    try:
        yield
    finally:
        parsers.removeFilter(drop_bodies)


class _DropResponseBodies(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Response body", "Response headers"))


def _split(secret_ref: str) -> tuple[str, str | None]:
    secret_id, _, key = secret_ref.partition("#")
    return secret_id, key or None


def read_secret(client, setting: str, secret_ref: str) -> str:
    """The value of `secret_ref` (`<id>` or `<id>#<json key>`) for `setting`."""
    secret_id, key = _split(secret_ref)
    where = f"{setting}: secret {secret_id!r}" + (f" key {key!r}" if key else "")
    try:
        with _response_bodies_unlogged():
            response = client.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise SecretUnavailable(f"{where} cannot be read from Secrets Manager ({code})") from None
    except BotoCoreError as exc:
        raise SecretUnavailable(f"{where} cannot be read from Secrets Manager ({type(exc).__name__})") from None
    value = response.get("SecretString")
    if value is None:
        raise SecretUnavailable(f"{where} has no string value (binary secrets are not supported)")
    if key is not None:
        try:
            document = json.loads(value)
        except ValueError:
            raise SecretUnavailable(f"{where}: the secret is not a JSON object") from None
        if not isinstance(document, dict) or not isinstance(document.get(key), str):
            raise SecretUnavailable(f"{where}: the JSON secret has no string value under that key")
        value = document[key]
    if not value.strip():
        raise SecretUnavailable(f"{where} is empty")
    return value


def read_secrets(refs: Mapping[str, str], region: str, endpoint_url: str | None = None) -> dict[str, str]:
    """`{setting: secret ref}` -> `{setting: value}`, in one client; the first unreadable one raises."""
    if not refs:
        return {}
    client = boto3.client("secretsmanager", region_name=region, endpoint_url=endpoint_url)
    return {setting: read_secret(client, setting, ref) for setting, ref in sorted(refs.items())}
