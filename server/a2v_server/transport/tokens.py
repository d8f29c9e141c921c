"""Resume tokens that any replica can check: they name the replica that owns the session and
the API key that started it, and are signed with a key the replicas share.

A token is ``<owner>.<session>.<mac>`` (URL-safe base64 parts): the owner's advertised address
(``A2V_ADVERTISE_ADDRESS``, how the other replicas reach it), a random session id, and an
HMAC-SHA256 over both and the caller's key id (security.key_id: never the key itself). So:

* A replica that does not own a session can tell, without asking anyone, that a token is
  genuine and whose it is, and forward Resume or Cancel to the owner (forward.py). The owner's
  address comes only from a signed token: nothing a caller writes can make a server connect
  to an address of the caller's choosing.
* A token shown with another API key, altered, or signed with another key is NOT_FOUND, as an
  unknown token is.
* Without a shared key (``A2V_RESUME_KEY_FILE``) each process signs with a random key of its
  own: its tokens work only on itself, as before replicas shared anything.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from a2v_server.errors import NotFound

#: bytes of the MAC kept in a token (128 bits)
MAC_BYTES = 16
#: a shared key file must hold at least this many bytes
MIN_KEY_BYTES = 32


def load_resume_key(path: str | Path) -> bytes:
    """The shared key from a file (a Kubernetes Secret mounted as a file): its bytes, less a
    trailing newline."""
    key = Path(path).read_bytes().rstrip(b"\r\n")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"{path}: the resume key must be at least {MIN_KEY_BYTES} bytes (e.g. `openssl rand "
            "-base64 48`), the same file on every replica"
        )
    return key


@dataclass(frozen=True)
class Token:
    owner: str  # the owning replica's advertised address ("" = this process only)
    session: str


class OwnedElsewhere(Exception):
    """A genuine token of a session that another replica owns: forward the call there."""

    def __init__(self, owner: str) -> None:
        super().__init__(owner)
        self.owner = owner


class TokenSigner:
    """Issues and checks this deployment's resume tokens; ``owner`` is this replica's address."""

    def __init__(self, key: bytes | None, owner: str) -> None:
        self._key = key if key else secrets.token_bytes(32)
        self.owner = owner

    def issue(self, key_id: str) -> str:
        owner = _b64(self.owner.encode())
        session = secrets.token_urlsafe(15)
        return f"{owner}.{session}.{_b64(self._mac(owner, session, key_id))}"

    def check(self, token: str, key_id: str) -> Token:
        """The token's owner and session, if it is genuine and ``key_id``'s; else NOT_FOUND."""
        parts = token.split(".")
        if len(parts) == 3:
            owner, session, mac = parts
            try:
                genuine = hmac.compare_digest(_unb64(mac), self._mac(owner, session, key_id))
                if genuine:
                    return Token(_unb64(owner).decode(), session)
            except (binascii.Error, ValueError, UnicodeDecodeError):
                pass
        raise unknown_token()

    def _mac(self, owner: str, session: str, key_id: str) -> bytes:
        message = f"a2v-resume-v1|{owner}|{session}|{key_id}".encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()[:MAC_BYTES]


def unknown_token(retention_seconds: float | None = None) -> NotFound:
    ended = (
        f"the session ended more than {retention_seconds:g} s ago, " if retention_seconds else ""
    )
    return NotFound(
        f"unknown or expired resume token: {ended}it was started with another API key, or on a "
        "server that does not share this one's resume key (A2V_RESUME_KEY_FILE); start again",
        field="resume_token",
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
