"""Resume and Cancel forwarded between two replicas (transport/forward.py) over mutual TLS,
with API keys: the replica that gets the call checks the signed token and calls the owner
with the caller's key and its own client certificate. Two real grpc.aio servers in this
process (fake backend); tests/integration/test_replicas.py runs the same on real processes."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from pki import KEY, OTHER_KEY
from test_sessions import _requests

from a2v.v1 import audio_to_video_pb2 as pb
from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc
from a2v_server.inference.triton_process import free_port
from a2v_server.settings import Settings


def _settings(port: int, pki: dict[str, str], keys_file: str, resume_key: Path) -> Settings:
    return Settings(
        listen=f"127.0.0.1:{port}",
        tls_cert_file=pki["server_cert"],
        tls_key_file=pki["server_key"],
        tls_client_ca_file=pki["ca"],
        peer_tls_ca_file=pki["ca"],
        api_keys_file=keys_file,
        resume_key_file=str(resume_key),
    )


def _credentials(pki: dict[str, str]) -> grpc.ChannelCredentials:
    read = [Path(pki[name]).read_bytes() for name in ("ca", "client_key", "client_cert")]
    return grpc.ssl_channel_credentials(*read)


async def test_resume_and_cancel_reach_the_owner_over_mutual_tls(serve, pki, keys_file, tmp_path):
    resume_key = tmp_path / "resume.key"
    resume_key.write_text("shared-by-the-replicas-" + "x" * 32)
    owner_port, other_port = free_port(), free_port()
    metadata = (("authorization", f"Bearer {KEY}"),)
    async with (
        serve(_settings(owner_port, pki, keys_file, resume_key)) as owner,
        serve(_settings(other_port, pki, keys_file, resume_key)) as other,
    ):
        async with grpc.aio.secure_channel(owner.address, _credentials(pki)) as channel:
            call = pb_grpc.AudioToVideoStub(channel).Generate(
                iter(_requests(3, resumable=True)), metadata=metadata
            )
            first = [r async for r in call]
        token = first[0].accepted.resume_token
        chunks = [r.chunk for r in first if r.HasField("chunk")]
        async with grpc.aio.secure_channel(other.address, _credentials(pki)) as channel:
            stub = pb_grpc.AudioToVideoStub(channel)
            # as after a connection lost after the third chunk
            request = pb.ResumeRequest(resume_token=token, last_sequence=2)
            rest = [r async for r in stub.Resume(request, metadata=metadata)]
            assert rest[-1].HasField("summary") and rest[-1].summary.frames == 75
            again = [r.chunk for r in rest if r.HasField("chunk")]
            assert again == chunks[3:]  # from the owner, through this replica
            # another API key: the token is not its own, on either replica
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Cancel(
                    pb.CancelRequest(resume_token=token),
                    metadata=(("authorization", f"Bearer {OTHER_KEY}"),),
                )
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
            # the owner answers the forwarded Cancel (its generation is over: nothing to stop)
            await stub.Cancel(pb.CancelRequest(resume_token=token), metadata=metadata)
