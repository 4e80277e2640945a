"""Keyed pseudonyms: resident, household and address IDs are HMAC-SHA256 of record keys under a secret.

The secret lives outside the repository (an environment variable or a file the config points to), so
nobody holding the linked histories and the raw identifiers can recompute an ID without it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from earlysignal.config import LinkageSection
from earlysignal.errors import EarlySignalError

MIN_SECRET_BYTES = 32
HOW_TO_CREATE = (
    "create one with\n"
    "  python -c \"import secrets; print(secrets.token_hex(32))\" > ~/.earlysignal-link-secret\n"
    "  chmod 600 ~/.earlysignal-link-secret\n"
    "and either set linkage.secret_file to that path or export {env}=\"$(cat ~/.earlysignal-link-secret)\". "
    "Keep it outside the repository and keep the same secret from month to month: resident IDs depend on it."
)


class SecretError(EarlySignalError):
    """The linkage secret is missing or too short."""


def load_secret(section: LinkageSection) -> bytes:
    """The linkage secret as bytes: env var `section.secret_env`, else `section.secret_file`.

    Raises SecretError (with how to create one) when neither is set or the secret is under 32 bytes.
    """
    value = os.environ.get(section.secret_env, "").strip()
    where = f"environment variable {section.secret_env}"
    if not value and section.secret_file is not None:
        path = Path(section.secret_file).expanduser()
        if not path.exists():
            raise SecretError(
                f"linkage.secret_file {path} does not exist; " + HOW_TO_CREATE.format(env=section.secret_env)
            )
        value = path.read_text(encoding="utf-8").strip()
        where = f"linkage.secret_file {path}"
    if not value:
        raise SecretError(
            f"no linkage secret: neither {section.secret_env} nor linkage.secret_file is set; "
            + HOW_TO_CREATE.format(env=section.secret_env)
        )
    secret = value.encode("utf-8")
    if len(secret) < MIN_SECRET_BYTES:
        raise SecretError(
            f"the linkage secret in {where} has {len(secret)} bytes; use at least {MIN_SECRET_BYTES}. "
            + HOW_TO_CREATE.format(env=section.secret_env)
        )
    return secret


def keyed_id(secret: bytes, prefix: str, key: str, length: int = 20) -> str:
    """`prefix` + the first `length` hex digits of HMAC-SHA256(secret, key)."""
    return prefix + hmac.new(secret, key.encode("utf-8"), hashlib.sha256).hexdigest()[:length]
