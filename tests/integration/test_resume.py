"""No lost output: cut the connection mid-stream; the client resumes by itself and the file is
byte for byte the one an uninterrupted run gives."""

from __future__ import annotations

import socket
import threading

from helpers import generate_all
from media import PORTRAIT, SPEECH

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import Client, GenerateOptions, file_audio
from a2v_server.inference.triton_process import free_port


class CuttableProxy:
    """A loopback TCP forwarder whose live connections can be cut (a flaky network)."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = []
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            self.connections += 1
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        for s in self._sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self._sockets.clear()

    def close(self) -> None:
        self.cut()
        self._listener.close()


def _options() -> GenerateOptions:
    return GenerateOptions(resolution="384x384", seed=11)


def test_cut_connection_resumes_byte_for_byte(stack):
    with Client(stack.address, timeout=120) as direct:
        reference = b"".join(
            r.chunk.data
            for r in direct.generate(audio=file_audio(SPEECH), image=PORTRAIT, options=_options())
            if r.HasField("chunk")
        )

    proxy = CuttableProxy(int(stack.address.rsplit(":", 1)[1]))
    try:
        with Client(f"127.0.0.1:{proxy.port}", timeout=120) as client:
            received, kinds = [], []
            for response in client.generate(
                audio=file_audio(SPEECH), image=PORTRAIT, options=_options()
            ):
                kinds.append(response.WhichOneof("message"))
                if response.HasField("chunk"):
                    received.append(response.chunk)
                    if len(received) == 8:
                        proxy.cut()  # the network fails mid-stream
        assert proxy.connections >= 2, "the client must have reconnected"
        assert kinds.count("accepted") == 1 and kinds[-1] == "summary"
        assert [c.sequence_number for c in received] == list(range(len(received)))
        assert b"".join(c.data for c in received) == reference
    finally:
        proxy.close()


def test_resume_with_unknown_token_is_not_found(stack):
    import grpc

    from a2v.v1 import audio_to_video_pb2_grpc as pb_grpc

    with grpc.insecure_channel(stack.address) as channel:
        stub = pb_grpc.AudioToVideoStub(channel)
        try:
            list(stub.Resume(pb.ResumeRequest(resume_token="nope"), timeout=10))
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
            assert "resume token" in error.details()
        else:
            raise AssertionError("Resume with an unknown token must fail")


def test_chunks_carry_a_crc(client):
    responses = generate_all(client, resolution="256x256")
    import zlib

    chunks = [r.chunk for r in responses if r.HasField("chunk")]
    assert all(c.crc32 == zlib.crc32(c.data) for c in chunks)
    assert responses[0].accepted.resume_token
