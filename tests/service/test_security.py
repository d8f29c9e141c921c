"""Security on the real grpc.aio server (fake backend): TLS, mutual TLS, the plaintext rule,
API keys, and the per-key limit on concurrent Generate streams."""

from __future__ import annotations

import asyncio
import logging
import sys

import grpc
import pytest
from fake_backend import FakeBackend
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from media import portrait_png
from pki import KEY, OTHER_KEY

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import A2VClientError, AsyncClient, GenerateOptions, TlsFiles
from a2v_server.main import create_server
from a2v_server.settings import Settings


async def _endless_audio():
    while True:
        yield pb.AudioChunk(pcm=pb.PcmChunk(data=b"\0\0" * 1600, sample_rate=16000, channels=1))
        await asyncio.sleep(0.02)


async def _open_stream(client: AsyncClient):
    """A Generate stream that has been admitted (its first response arrived); still running."""
    gen = client.generate(
        audio=_endless_audio(), image=portrait_png(), options=GenerateOptions(resolution="64x64")
    )
    first = await anext(gen)
    assert first.HasField("accepted")
    return gen


async def _short_clip(client: AsyncClient) -> list[pb.GenerateResponse]:
    pcm = pb.AudioChunk(pcm=pb.PcmChunk(data=b"\0\0" * 8000, sample_rate=16000, channels=1))
    return [
        r
        async for r in client.generate(
            audio=[pcm], image=portrait_png(), options=GenerateOptions(resolution="64x64")
        )
    ]


# --- TLS ------------------------------------------------------------------------------------------
async def test_tls_serves_a_verified_client(serve, pki):
    settings = Settings(
        listen="127.0.0.1:0", tls_cert_file=pki["server_cert"], tls_key_file=pki["server_key"]
    )
    async with serve(settings) as service:
        async with AsyncClient(f"localhost:{service.port}", tls=TlsFiles(ca=pki["ca"])) as client:
            assert await client.health() == "SERVING"
            assert [m.name for m in await client.list_models()]
        # a plaintext client cannot talk to a TLS port
        async with AsyncClient(service.address) as plain:
            with pytest.raises(A2VClientError) as info:
                await plain.list_models()
            assert info.value.code == "UNAVAILABLE"


async def test_mutual_tls_requires_a_client_certificate(serve, pki):
    settings = Settings(
        listen="127.0.0.1:0",
        tls_cert_file=pki["server_cert"],
        tls_key_file=pki["server_key"],
        tls_client_ca_file=pki["ca"],
    )
    async with serve(settings) as service:
        address = service.address
        async with AsyncClient(address, tls=TlsFiles(ca=pki["ca"])) as anonymous:
            with pytest.raises(A2VClientError) as info:
                await anonymous.list_models()
            assert info.value.code == "UNAVAILABLE"
        with_cert = TlsFiles(ca=pki["ca"], cert=pki["client_cert"], key=pki["client_key"])
        async with AsyncClient(address, tls=with_cert) as client:
            responses = await _short_clip(client)
            assert responses[-1].HasField("summary")


# --- plaintext only on loopback -------------------------------------------------------------------
@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0", "example.com:50051", ":50051"])
def test_plaintext_refuses_a_public_address(listen):
    with pytest.raises(ValueError, match="A2V_ALLOW_INSECURE=true"):
        create_server(Settings(listen=listen), FakeBackend())
    with pytest.raises(ValueError, match="without TLS"):
        Settings.from_env({"A2V_LISTEN": listen})


async def test_a_port_already_served_is_refused_not_shared(serve):
    """A second server on the port of a running one does not start: it would share the
    port's connections with it (gRPC's SO_REUSEPORT), each client landing on either."""
    async with serve() as running:
        with pytest.raises(RuntimeError, match=r"cannot listen on 127\.0\.0\.1:.*in use"):
            create_server(Settings(listen=running.address), FakeBackend())


async def test_plaintext_on_all_interfaces_when_allowed(serve):
    settings = Settings(listen="0.0.0.0:0", allow_insecure=True)
    async with serve(settings) as service, AsyncClient(service.address) as client:
        assert await client.health() == "SERVING"


# --- API keys -------------------------------------------------------------------------------------
async def test_api_keys_gate_every_call_but_health(serve, keys_file, caplog):
    caplog.set_level(logging.DEBUG)
    settings = Settings(listen="127.0.0.1:0", api_keys_file=keys_file)
    async with serve(settings) as service:
        address = service.address
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


async def test_client_reads_the_key_from_the_environment(serve, keys_file, monkeypatch):
    monkeypatch.setenv("A2V_API_KEY", OTHER_KEY)
    settings = Settings(listen="127.0.0.1:0", api_keys_file=keys_file)
    async with serve(settings) as service, AsyncClient(service.address) as client:
        assert await client.list_models()


async def test_cli_sends_the_api_key(serve, keys_file, tmp_path):
    async with serve(Settings(listen="127.0.0.1:0", api_keys_file=keys_file)) as service:

        async def cli(*args: str, env_key: str | None = None) -> tuple[int, str]:
            env = {"PATH": "/usr/bin:/bin"}
            if env_key:
                env["A2V_API_KEY"] = env_key
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "a2v_client.cli",
                "--server",
                service.address,
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


async def test_stream_limit_per_key_and_freed_on_cancel(serve, keys_file):
    settings = Settings(listen="127.0.0.1:0", api_keys_file=keys_file, max_streams_per_key=2)
    async with serve(settings) as service:
        address = service.address
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


async def test_stream_slot_freed_after_success_and_error(serve):
    backend = FakeBackend()
    settings = Settings(listen="127.0.0.1:0", max_streams_per_key=1)  # no keys: one bucket
    async with serve(settings, backend) as service, AsyncClient(service.address) as client:
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
