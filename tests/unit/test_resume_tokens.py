"""Resume tokens (transport/tokens.py): any replica with the shared key can tell whose session
a token is and which replica owns it; nothing else passes."""

from __future__ import annotations

import pytest

from a2v_server.errors import NotFound
from a2v_server.transport.tokens import MIN_KEY_BYTES, TokenSigner, load_resume_key

KEY = b"k" * 32


def test_a_token_names_its_owner_to_every_replica_with_the_key():
    token = TokenSigner(KEY, "10.0.0.7:50051").issue("key-a")
    seen = TokenSigner(KEY, "10.0.0.9:50051").check(token, "key-a")
    assert seen.owner == "10.0.0.7:50051" and seen.session


@pytest.mark.parametrize(
    "case", ["other API key", "other signing key", "altered owner", "altered MAC", "garbage"]
)
def test_anything_else_is_an_unknown_token(case):
    signer = TokenSigner(KEY, "10.0.0.7:50051")
    token = signer.issue("key-a")
    owner, session, mac = token.split(".")
    key_id, checker = "key-a", signer
    if case == "other API key":
        key_id = "key-b"
    elif case == "other signing key":
        checker = TokenSigner(b"o" * 32, "10.0.0.9:50051")
    elif case == "altered owner":
        token = f"MTI3LjAuMC4xOjk5OTk.{session}.{mac}"  # 127.0.0.1:9999
    elif case == "altered MAC":
        token = f"{owner}.{session}.{'A' * len(mac)}"
    else:
        token = "not.a.token!"
    with pytest.raises(NotFound, match="unknown or expired resume token"):
        checker.check(token, key_id)


def test_without_a_shared_key_tokens_work_only_where_they_were_issued():
    issuer = TokenSigner(None, "a:1")  # a random key of its own
    token = issuer.issue("k")
    assert issuer.check(token, "k").owner == "a:1"
    with pytest.raises(NotFound):
        TokenSigner(None, "b:1").check(token, "k")


def test_a_short_key_file_is_refused(tmp_path):
    path = tmp_path / "key"
    path.write_text("short\n")
    with pytest.raises(ValueError, match=f"at least {MIN_KEY_BYTES} bytes"):
        load_resume_key(path)
    path.write_text("x" * MIN_KEY_BYTES + "\n")
    assert load_resume_key(path) == b"x" * MIN_KEY_BYTES


def test_the_address_other_replicas_reach_this_one_at():
    from a2v_server.settings import Settings
    from a2v_server.transport.forward import own_address

    assert own_address(Settings(advertise_address="10.1.2.3:50051")) == "10.1.2.3:50051"
    assert own_address(Settings(listen="127.0.0.1:5000")) == "127.0.0.1:5000"
    # every interface (a container, a pod): this host's own address, with the port
    anywhere = own_address(Settings(listen="0.0.0.0:5000", allow_insecure=True))
    host, _, port = anywhere.rpartition(":")
    assert port == "5000" and host not in ("", "0.0.0.0")
