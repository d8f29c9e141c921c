"""Security on the real grpc.aio server (fake backend): TLS, mutual TLS, the plaintext rule,
API keys, and the per-key limit on concurrent Generate streams."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import sys
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fake_backend import FakeBackend
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import A2VClientError, AsyncClient, GenerateOptions, TlsFiles
from a2v_server.main import create_server, parse_args
from a2v_server.settings import Settings
from a2v_server.transport.security import KeyChecker, load_api_keys

KEY = "k3y-for-tests-0123456789"
OTHER_KEY = "another-key-abcdef"


# --- test certificates ----------------------------------------------------------------------------
def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject: str, key, issuer_name, issuer_key, *, ca: bool, server: bool = False):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert=None, key=None) -> str:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return str(path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate: PEM paths."""
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("a2v test CA", ca_key, _name("a2v test CA"), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue("localhost", server_key, ca.subject, ca_key, ca=False, server=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue("a2v test client", client_key, ca.subject, ca_key, ca=False)
    return {
        "ca": _write(d / "ca.pem", cert=ca),
        "server_cert": _write(d / "server.pem", cert=server),
        "server_key": _write(d / "server.key", key=server_key),
        "client_cert": _write(d / "client.pem", cert=client),
        "client_key": _write(d / "client.key", key=client_key),
    }


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("keys") / "api-keys"
    path.write_text(f"# a2v API keys\n\n{KEY}\n  {OTHER_KEY}  \n# retired-key\n")
    return str(path)


@contextlib.asynccontextmanager
async def running(settings: Settings, backend: FakeBackend | None = None):
    server, port, watcher = create_server(settings, backend or FakeBackend())
    await server.start()
    await watcher.check_once()
    try:
        yield port
    finally:
        await server.stop(None)


def _portrait_png() -> bytes:
    img = np.full((240, 320, 3), (200, 120, 40), np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


async def _endless_audio():
    while True:
        yield pb.AudioChunk(pcm=pb.PcmChunk(data=b"\0\0" * 1600, sample_rate=16000, channels=1))
        await asyncio.sleep(0.02)


async def _open_stream(client: AsyncClient):
    """A Generate stream that has been admitted (its first response arrived); still running."""
    gen = client.generate(
        audio=_endless_audio(), image=_portrait_png(), options=GenerateOptions(resolution="64x64")
    )
    first = await anext(gen)
    assert first.HasField("accepted")
    return gen


async def _short_clip(client: AsyncClient) -> list[pb.GenerateResponse]:
    pcm = pb.AudioChunk(pcm=pb.PcmChunk(data=b"\0\0" * 8000, sample_rate=16000, channels=1))
    return [
        r
        async for r in client.generate(
            audio=[pcm], image=_portrait_png(), options=GenerateOptions(resolution="64x64")
        )
    ]


# --- TLS ------------------------------------------------------------------------------------------
async def test_tls_serves_a_verified_client(pki):
    settings = Settings(
        listen="127.0.0.1:0", tls_cert_file=pki["server_cert"], tls_key_file=pki["server_key"]
    )
    async with running(settings) as port:
        async with AsyncClient(f"localhost:{port}", tls=TlsFiles(ca=pki["ca"])) as client:
            assert await client.health() == "SERVING"
            assert [m.name for m in await client.list_models()]
        # a plaintext client cannot talk to a TLS port
        async with AsyncClient(f"127.0.0.1:{port}") as plain:
            with pytest.raises(A2VClientError) as info:
                await plain.list_models()
            assert info.value.code == "UNAVAILABLE"


async def test_mutual_tls_requires_a_client_certificate(pki):
    settings = Settings(
        listen="127.0.0.1:0",
        tls_cert_file=pki["server_cert"],
        tls_key_file=pki["server_key"],
        tls_client_ca_file=pki["ca"],
    )
    async with running(settings) as port:
        address = f"127.0.0.1:{port}"
        async with AsyncClient(address, tls=TlsFiles(ca=pki["ca"])) as anonymous:
            with pytest.raises(A2VClientError) as info:
                await anonymous.list_models()
            assert info.value.code == "UNAVAILABLE"
        with_cert = TlsFiles(ca=pki["ca"], cert=pki["client_cert"], key=pki["client_key"])
        async with AsyncClient(address, tls=with_cert) as client:
            responses = await _short_clip(client)
            assert responses[-1].HasField("summary")


def test_tls_settings_go_together(pki):
    with pytest.raises(ValueError, match="set both"):
        Settings(tls_cert_file=pki["server_cert"]).validated()
    with pytest.raises(ValueError, match="mutual TLS"):
        Settings(tls_client_ca_file=pki["ca"]).validated()


# --- plaintext only on loopback -------------------------------------------------------------------
@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0", "example.com:50051", ":50051"])
def test_plaintext_refuses_a_public_address(listen):
    with pytest.raises(ValueError, match="A2V_ALLOW_INSECURE=true"):
        create_server(Settings(listen=listen), FakeBackend())
    with pytest.raises(ValueError, match="without TLS"):
        Settings.from_env({"A2V_LISTEN": listen})


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "localhost:0", "[::1]:0", "127.0.0.2:0"])
def test_plaintext_is_fine_on_loopback(listen):
    assert Settings.from_env({"A2V_LISTEN": listen}).listen == listen


async def test_plaintext_on_all_interfaces_when_allowed():
    settings = Settings(listen="0.0.0.0:0", allow_insecure=True)
    async with running(settings) as port, AsyncClient(f"127.0.0.1:{port}") as client:
        assert await client.health() == "SERVING"


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


# --- API keys -------------------------------------------------------------------------------------
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


async def test_api_keys_gate_every_call_but_health(keys_file, caplog):
    caplog.set_level(logging.DEBUG)
    settings = Settings(listen="127.0.0.1:0", api_keys_file=keys_file)
    async with running(settings) as port:
        address = f"127.0.0.1:{port}"
        for key, what in (("", "no API key"), ("wrong-key", "not valid")):
            async with AsyncClient(address, api_key=key) as client:
                assert await client.health() == "SERVING"  # probes need no key
                for call in (client.list_models(), _short_clip(client)):
                    with pytest.raises(A2VClientError) as info:
                        await call
                    assert info.value.code == "UNAUTHENTICATED"
                    assert what in info.value.message
                    assert "authorization: Bearer <key>" in info.value.message
        async with AsyncClient(address, api_key=KEY) as client:
            assert [m.name for m in await client.list_models()]
            assert (await _short_clip(client))[-1].HasField("summary")
        # reflection stays open for tools such as grpcurl
        async with grpc.aio.insecure_channel(address) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            replies = [r async for r in stub.ServerReflectionInfo(iter([request]))]
            assert replies[0].list_services_response.service
    assert KEY not in caplog.text and "wrong-key" not in caplog.text
    assert "rejected" in caplog.text


async def test_client_reads_the_key_from_the_environment(keys_file, monkeypatch):
    monkeypatch.setenv("A2V_API_KEY", OTHER_KEY)
    settings = Settings(listen="127.0.0.1:0", api_keys_file=keys_file)
    async with running(settings) as port, AsyncClient(f"127.0.0.1:{port}") as client:
        assert await client.list_models()


async def test_cli_sends_the_api_key(keys_file, tmp_path):
    async with running(Settings(listen="127.0.0.1:0", api_keys_file=keys_file)) as port:

        async def cli(*args: str, env_key: str | None = None) -> tuple[int, str]:
            env = {"PATH": "/usr/bin:/bin"}
            if env_key:
                env["A2V_API_KEY"] = env_key
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "a2v_client.cli",
                "--server",
                f"127.0.0.1:{port}",
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            return proc.returncode, (out + err).decode()

        code, text = await cli("models")
        assert code == 1 and "UNAUTHENTICATED" in text and "--api-key" in text
        code, text = await cli("--api-key", KEY, "models")
        assert code == 0 and "talking_avatar" in text
        code, _ = await cli("models", env_key=OTHER_KEY)
        assert code == 0
        code, text = await cli("health")
        assert code == 0 and "SERVING" in text


# --- per-key stream limit -------------------------------------------------------------------------
async def _admit_within(client: AsyncClient, seconds: float):
    """Open a stream, retrying while the key is over its limit (a slot frees asynchronously)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            return await _open_stream(client)
        except A2VClientError as error:
            if error.code != "RESOURCE_EXHAUSTED" or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_stream_limit_per_key_and_freed_on_cancel(keys_file):
    settings = Settings(listen="127.0.0.1:0", api_keys_file=keys_file, max_streams_per_key=2)
    async with running(settings) as port:
        address = f"127.0.0.1:{port}"
        async with (
            AsyncClient(address, api_key=KEY) as client,
            AsyncClient(address, api_key=OTHER_KEY) as other,
        ):
            streams = [await _open_stream(client), await _open_stream(client)]
            with pytest.raises(A2VClientError) as info:
                await _open_stream(client)
            assert info.value.code == "RESOURCE_EXHAUSTED"
            assert info.value.retry_delay == 5 and "retry in 5 s" in info.value.message
            # another key has its own slots
            other_stream = await _open_stream(other)
            # a client cancel frees the slot
            await streams.pop().aclose()
            streams.append(await _admit_within(client, 5))
            for gen in [*streams, other_stream]:
                await gen.aclose()


async def test_stream_slot_freed_after_success_and_error():
    backend = FakeBackend()
    settings = Settings(listen="127.0.0.1:0", max_streams_per_key=1)  # no keys: one bucket
    async with running(settings, backend) as port, AsyncClient(f"127.0.0.1:{port}") as client:
        for _ in range(3):
            assert (await _short_clip(client))[-1].HasField("summary")
        backend.faces = False
        for _ in range(3):
            with pytest.raises(A2VClientError) as info:
                await _short_clip(client)
            assert info.value.code == "INVALID_ARGUMENT"
        backend.faces = True
        stream = await _open_stream(client)
        with pytest.raises(A2VClientError) as info:
            await _short_clip(client)
        assert info.value.code == "RESOURCE_EXHAUSTED"
        await stream.aclose()
        await (await _admit_within(client, 5)).aclose()
