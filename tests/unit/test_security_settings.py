"""Security settings and credentials, no server: TLS settings, the plaintext rule for loopback
addresses, the server's flags, the API keys file and the key check. On a running server:
tests/service/test_security.py."""

from __future__ import annotations

import pytest
from pki import KEY, OTHER_KEY

from a2v_server.main import parse_args
from a2v_server.settings import Settings
from a2v_server.transport.security import KeyChecker, load_api_keys


def test_tls_settings_go_together(pki):
    with pytest.raises(ValueError, match="set both"):
        Settings(tls_cert_file=pki["server_cert"]).validated()
    with pytest.raises(ValueError, match="mutual TLS"):
        Settings(tls_client_ca_file=pki["ca"]).validated()


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "localhost:0", "[::1]:0", "127.0.0.2:0"])
def test_plaintext_is_fine_on_loopback(listen):
    assert Settings.from_env({"A2V_LISTEN": listen}).listen == listen


def test_server_flags_reach_the_settings(pki, keys_file, monkeypatch):
    monkeypatch.delenv("A2V_LISTEN", raising=False)
    settings = parse_args(
        [
            "--listen=0.0.0.0:50051",
            f"--tls-cert-file={pki['server_cert']}",
            f"--tls-key-file={pki['server_key']}",
            f"--tls-client-ca-file={pki['ca']}",
            f"--api-keys-file={keys_file}",
            "--max-streams-per-key=2",
        ]
    )
    assert settings.tls_client_ca_file == pki["ca"] and settings.max_streams_per_key == 2
    with pytest.raises(ValueError, match="without TLS"):
        parse_args(["--listen=0.0.0.0:50051"])
    assert parse_args(["--listen=0.0.0.0:50051", "--allow-insecure"]).allow_insecure


def test_keys_file_skips_blanks_and_comments(keys_file, tmp_path):
    assert load_api_keys(keys_file) == [KEY, OTHER_KEY]
    empty = tmp_path / "empty"
    empty.write_text("# nothing yet\n\n")
    with pytest.raises(ValueError, match="no keys"):
        load_api_keys(empty)


def test_key_checker_matches_exactly():
    checker = KeyChecker([KEY, OTHER_KEY])
    assert checker.identify(KEY) and checker.identify(OTHER_KEY)
    assert checker.identify(KEY) != checker.identify(OTHER_KEY)
    for wrong in ("", KEY[:-1], KEY + "x", KEY.upper(), " " + KEY):
        assert checker.identify(wrong) is None
