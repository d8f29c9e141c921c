"""The CLI and the client library without an a2v server: every mistake that can be found
locally ends with one line naming the option or file and a distinct exit status, before any
stream is opened; a server that cannot be reached is named with what to check; a closed stdout
stops the CLI quietly and cancels the call. Where a call is needed, a stub gRPC server in this
process answers (``StubServer``). Also: the client's checks agree with the server's (formats,
option ranges), the server's report of ignored settings, and the README's synopsis."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc
from media import PORTRAIT, SPEECH

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import (
    A2VClientError,
    AsyncClient,
    Client,
    GenerateOptions,
    InputFormatError,
    OptionError,
    audio_kind_name,
    file_audio,
)
from a2v_client.cli import build_parser, synopsis
from a2v_client.files import audio_format, image_format, video_format
from a2v_server import catalog
from a2v_server.errors import InvalidInput
from a2v_server.inference.triton_process import free_port
from a2v_server.media.audio import detect_audio_format
from a2v_server.media.image_files import detect as detect_image_format
from a2v_server.media.video import detect_video_format
from a2v_server.pipeline.honoured import ignored_settings, setting_warnings
from a2v_server.transport.config import spec_from_config
from a2v_server.transport.convert import model_info

ROOT = Path(__file__).resolve().parents[2]
A2V = Path(sys.executable).parent / "a2v"


def a2v(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None, **kwargs
) -> subprocess.CompletedProcess:
    """The CLI run to its end (subprocess.run's way); one that hangs fails with its stacks."""
    env = {**(os.environ if env is None else env), "PYTHONFAULTHANDLER": "1"}
    with subprocess.Popen(
        [str(A2V), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    ) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"a2v {' '.join(args)} did not exit: {_dumped(process)}")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _dumped(process: subprocess.Popen) -> str:
    """A hung CLI's threads' stacks (run with PYTHONFAULTHANDLER=1: SIGABRT makes it print
    them), and its stderr: how an ignored SIGINT inherited from the test process was found."""
    process.send_signal(signal.SIGABRT)
    try:
        _, err = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return err if isinstance(err, str) else (err or b"").decode(errors="replace")


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def generate(*extra: str, audio: Path = SPEECH, image: Path = PORTRAIT) -> list[str]:
    return ["generate", "--audio", str(audio), "--image", str(image), *extra]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    (d / "notes.txt").write_text("hello\n")
    (d / "a folder").mkdir()
    (d / "empty.wav").write_bytes(b"")
    (d / "noise.wav").write_bytes(bytes(range(256)) * 8)  # named like audio: the server judges
    return {
        "text": d / "notes.txt",
        "folder": d / "a folder",
        "empty": d / "empty.wav",
        "noise": d / "noise.wav",
        "dir": d,
    }


# --- local mistakes: one line, exit 2, before connecting -------------------------------------
# Every case runs against a port where nothing listens: a check that waited for the server
# would end in UNAVAILABLE (exit 1) instead.
NOWHERE = f"127.0.0.1:{free_port()}"


@pytest.mark.parametrize(
    ("case", "words"),
    [
        (
            ["--resolution", "720"],
            "--resolution 720: use 480p, 720p, 1080p, source or WIDTHxHEIGHT",
        ),
        (["--resolution", "333x200"], "--resolution 333x200: width and height must be even"),
        (["--fps", "0"], "--fps 0: give 1 to 60 frames per second"),
        (["--fps", "120"], "--fps 120.0: give 1 to 60 frames per second"),
        (["--fps", "nan"], "--fps nan: give 1 to 60"),
        (["--aspect", "9:61"], "argument --aspect: invalid choice: '9:61'"),
        (["--fit", "stretch"], "argument --fit: invalid choice"),
        (["--expression-scale", "3"], "--expression-scale 3.0: give a number within 0..2"),
        (["--head-motion", "-1"], "--head-motion -1.0: give a number within 0..2"),
        (["--blink-rate", "100"], "--blink-rate 100.0: give a number within 0..60"),
        (["--trim-start", "3", "--trim-end", "2"], "--trim-end 2.0: give seconds after"),
        (["--trim-start", "-1"], "--trim-start -1.0: give seconds within 0.."),
        (["--seed", "-4"], "--seed -4: give a whole number within 0.."),
        (["--face-index", "-1"], "--face-index -1: give a whole number within 0.."),
        (["--sync-mode", "pingpong"], "argument --sync-mode: invalid choice"),
        (["--prompt", "x" * 2001], "--prompt"),
        (["--fps", "abc"], "argument --fps: invalid float value: 'abc'"),
        (["--seed", "1.5"], "argument --seed: invalid int value: '1.5'"),
        (["--range", "4"], "--range 4: give START:END in seconds"),
        (["--range", "a:b"], "--range a:b: give START:END in seconds"),
        (["--range", "5:2"], "--range 5:2: START must be >= 0 and END after it"),
        (["--speakers", "0:2"], "--speakers 0:2: give START:END=FACE turns"),
        (["--speakers", "0:2=0,ch1=1"], "give turns or channels, not both"),
        (["--speakers", "2:1=0"], "--speakers 2:1=0: each turn's END must be after its START"),
    ],
)
def test_bad_option_values(tmp_path, case, words):
    done = a2v("--server", NOWHERE, *generate("-o", str(tmp_path / "x.mp4"), *case))
    assert done.returncode == 2, done.stderr
    assert words in one_line(done.stderr)
    assert not list(tmp_path.iterdir())


def test_bad_input_files(tmp_path, files):
    out = ["-o", str(tmp_path / "x.mp4")]
    cases = [
        (generate(*out, audio=Path("nope.wav")), "--audio nope.wav: no such file"),
        (generate(*out, audio=Path("missing/nope.wav")), "the folder 'missing' does not exist"),
        (generate(*out, audio=files["folder"]), "is a folder; give an audio file"),
        (generate(*out, audio=files["text"]), "not an audio file the server takes (it looks"),
        (generate(*out, audio=files["empty"]), "(it is empty)"),
        (generate(*out, audio=PORTRAIT), "(it is a JPEG image); use WAV, MP3"),
        (generate(*out, audio=PORTRAIT), "(give it with --image)"),
        (generate(*out, image=SPEECH), "--image " + str(SPEECH) + ": not an image file"),
        (generate(*out, image=Path("nope.png")), "--image nope.png: no such file"),
        (generate(*out, image=files["folder"]), "is a folder; give an image file"),
        (
            ["generate", "--audio", str(SPEECH), "--video", str(PORTRAIT), *out],
            "not a video file the server takes (it is a JPEG image)",
        ),
        (["generate", "--audio", str(SPEECH), "--video", "nope.mp4", *out], "no such file"),
    ]
    for args, words in cases:
        done = a2v("--server", NOWHERE, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert words in one_line(done.stderr), args
        assert "Errno" not in done.stderr and "Traceback" not in done.stderr


def test_bad_outputs(tmp_path, files):
    cases = [
        (["-o", str(tmp_path / "no" / "x.mp4")], "does not exist; create it"),
        (["-o", str(files["folder"])], "is a folder; give a file name such as"),
        (["-o", str(SPEECH)], "is also an input"),
        (["-o", str(tmp_path / "x.mp4"), "--timeline", str(files["folder"])], "--timeline"),
    ]
    for args, words in cases:
        done = a2v("--server", NOWHERE, *generate(*args))
        assert done.returncode == 2, (args, done.stderr)
        assert words in one_line(done.stderr), args
    assert SPEECH.exists()


def test_missing_arguments_and_unknown_options(tmp_path):
    for args, words in [
        (["generate", "--audio", str(SPEECH), "-o", "x.mp4"], "--image --video is required"),
        (generate(), "required: -o/--output"),
        (generate("-o", "x.mp4", "--frobnicate"), "unrecognized arguments: --frobnicate"),
        (["render"], "invalid choice: 'render'"),
    ]:
        done = a2v(*args, cwd=tmp_path)
        assert done.returncode == 2
        assert words in one_line(done.stderr), args


def test_tls_file_mistakes(tmp_path, files):
    out = ["-o", str(tmp_path / "x.mp4")]
    for args, words in [
        (["--tls-ca", "/nope.pem"], "--tls-ca '/nope.pem': no such file"),
        (["--tls-ca", str(files["text"])], "not a PEM certificate"),
        (["--tls-ca", str(files["folder"])], "is a folder"),
        (["--tls-cert", str(files["text"])], "give both --tls-cert and --tls-key"),
    ]:
        done = a2v("--server", NOWHERE, *generate(*out), *args)  # after the command too
        assert done.returncode == 2, done.stderr
        assert words in one_line(done.stderr), args


def test_bad_addresses(tmp_path):
    for address, words in [
        ("localhost", "--server localhost: give HOST:PORT, e.g. localhost:50051"),
        ("http://localhost:50051", "give HOST:PORT without http:// (--tls for TLS)"),
        ("host:99999", "the port must be within 1..65535"),
    ]:
        done = a2v("--server", address, "health")
        assert done.returncode == 2 and words in one_line(done.stderr), address
    done = a2v("health", env={"A2V_SERVER": "localhost", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and "$A2V_SERVER=localhost: give HOST:PORT" in done.stderr


def test_more_mistakes_a_new_user_makes(tmp_path):
    out = str(tmp_path / "x.mp4")
    gif = tmp_path / "face.gif"
    gif.write_bytes(b"GIF89a" + b"\0" * 64)
    heic = tmp_path / "IMG_0001.HEIC"
    heic.write_bytes(b"\0\0\0\x18ftypheic" + b"\0" * 64)
    for args, words in [
        (generate("-o", out, image=gif), "(it is a GIF image); use PNG, JPEG or WebP"),
        (generate("-o", out, image=heic), "(it is a HEIC/AVIF image); use PNG, JPEG or WebP"),
        (generate("-o", out, "--timeline", out), "--timeline " + out + ": is also the video's"),
        (generate("-o", out, "--report", out), "--report " + out + ": is also the video's"),
        (
            generate("-o", out, "--report", out + ".j", "--timeline", out + ".j"),
            "--report " + out + ".j: is also the --timeline file",
        ),
        (generate("-o", out, audio=Path("~/speech.wav")), "~ was not expanded"),
        (generate("-o", out, "--video", str(PORTRAIT)), "not allowed with argument --image"),
        (generate("-o", "-", "--audio", "-", "--realtime"), "--realtime needs an audio file"),
        (generate("-o", out, "--raw-frames"), "--raw-frames: sends a live video's frames"),
    ]:
        done = a2v("--server", NOWHERE, *args, stdin=subprocess.DEVNULL)
        assert done.returncode == 2, (args, done.stderr)
        assert words in one_line(done.stderr), args
    assert not gif.with_suffix(".gif.partial").exists()


def test_library_type_slips_are_named():
    with Client(NOWHERE) as client:
        with pytest.raises(TypeError, match=r"use file_audio\('speech\.wav'\)"):
            client.generate(audio="speech.wav", image=PORTRAIT)
        with pytest.raises(TypeError, match=r"use bytes_audio\(data\)"):
            client.generate(audio=b"RIFF", image=PORTRAIT)
        with PORTRAIT.open("rb") as f:  # a file object is taken as the portrait
            client.generate(audio=[], image=f).close()


def test_connection_options_go_before_or_after_the_command():
    parser = build_parser()
    before = parser.parse_args(["--server", "h:1", "--api-key", "k", "health"])
    after = parser.parse_args(["health", "--server", "h:1", "--api-key", "k"])
    assert (before.server, before.api_key) == (after.server, after.api_key) == ("h:1", "k")
    assert parser.parse_args(["health"]).server is None  # the default comes from the env


def test_unreachable_server_is_named_with_what_to_check(tmp_path):
    done = a2v("--server", NOWHERE, *generate("-o", str(tmp_path / "x.mp4")))
    line = one_line(done.stderr)
    assert done.returncode == 1
    assert line.startswith(f"a2v: UNAVAILABLE: nothing answers at {NOWHERE} (connection refused)")
    assert "(address from --server)" in line
    done = a2v("health", env={"A2V_SERVER": NOWHERE, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1 and "(address from $A2V_SERVER)" in one_line(done.stderr)
    # models, after the command
    done = a2v("models", "--server", NOWHERE)
    assert done.returncode == 1 and "nothing answers" in one_line(done.stderr)


def test_tls_mismatches_are_named(tmp_path, pki):
    other = __import__("pki").make_pki(tmp_path)
    key, cert = Path(pki["server_key"]).read_bytes(), Path(pki["server_cert"]).read_bytes()
    tls_port, plain_port = free_port(), free_port()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    server.add_secure_port(f"127.0.0.1:{tls_port}", grpc.ssl_server_credentials([(key, cert)]))
    server.add_insecure_port(f"127.0.0.1:{plain_port}")
    server.start()
    try:
        tls, plain = f"127.0.0.1:{tls_port}", f"127.0.0.1:{plain_port}"
        for args, code, words in [
            (["--server", tls, "--tls-ca", pki["ca"]], 0, ""),
            (["--server", tls], 1, "closed the connection while it was being set up"),
            (["--server", tls, "--tls-ca", other["ca"]], 1, "is not trusted: give the CA"),
            (["--server", plain, "--tls-ca", pki["ca"]], 1, "does not speak TLS"),
        ]:
            done = a2v(*args, "health")
            assert done.returncode == code, (args, done.stderr)
            if code:  # one line naming the address, gRPC's own log kept out of it
                line = one_line(done.stderr)
                assert words in line and args[1] in line, line
            else:
                assert done.stdout.strip() == "SERVING"
    finally:
        server.stop(None)


# --- the library: the same checks, before any stream ----------------------------------------
def test_options_raise_value_errors_that_are_invalid_argument():
    with pytest.raises(ValueError, match=r"aspect='9:61': use 1:1, 16:9, 9:16, 4:3, 3:4 or source"):
        GenerateOptions(aspect="9:61").to_proto()
    with pytest.raises(A2VClientError) as info:
        GenerateOptions(resolution="720").to_proto()
    assert info.value.code == "INVALID_ARGUMENT"
    assert "use 480p, 720p, 1080p, source or WIDTHxHEIGHT" in info.value.message
    assert info.value.violations[0][0] == "config.output.resolution"
    assert isinstance(info.value, OptionError)


def test_generate_checks_before_opening_a_stream(tmp_path):
    # nothing listens at NOWHERE: a check that opened the stream first would be UNAVAILABLE
    with Client(NOWHERE) as client:
        with pytest.raises(ValueError, match="aspect='9:61'"):
            client.generate(audio=[], image=PORTRAIT, options=GenerateOptions(aspect="9:61"))
        with pytest.raises(FileNotFoundError, match=r"image file 'nope\.jpg': no such file"):
            client.generate(audio=[], image="nope.jpg")
        with pytest.raises(InputFormatError, match="not a video file"):
            client.generate(audio=[], video=PORTRAIT)
        with pytest.raises(ValueError, match="give exactly one visual input"):
            client.generate(audio=[])
    with pytest.raises(FileNotFoundError, match=r"audio file 'nope\.wav': no such file"):
        file_audio("nope.wav")
    with pytest.raises(IsADirectoryError):
        file_audio(tmp_path)


async def test_async_generate_checks_before_opening_a_stream():
    async with AsyncClient(NOWHERE) as client:
        with pytest.raises(ValueError, match=r"fps=0\.5"):
            client.generate(audio=[], image=PORTRAIT, options=GenerateOptions(fps=0.5))


def test_audio_kind_by_name():
    assert audio_kind_name(pb.Summary(audio_kind=pb.AUDIO_KIND_SPEECH)) == "speech"
    assert audio_kind_name(pb.AUDIO_KIND_MUSIC) == "music"
    assert audio_kind_name(pb.Summary()) == "unknown"


def test_unreachable_server_in_the_library():
    with Client(NOWHERE) as client, pytest.raises(A2VClientError) as info:
        client.health()
    assert info.value.code == "UNAVAILABLE" and info.value.reason == "refused"
    assert info.value.message.startswith(f"nothing answers at {NOWHERE}")


# --- a stub server: request failures, a closed stdout --------------------------------------
class StubServer:
    """AudioToVideo on a free loopback port, answering from ``self``: Generate reads the config,
    sends Accepted (``accepted``), then one chunk every 10 ms while ``endless``, else reads the
    requests to their end and sends ``summary`` if given; Cancel and the end of each Generate
    call are recorded."""

    def __init__(
        self,
        accepted: pb.Accepted | None = None,
        endless: bool = False,
        summary: pb.Summary | None = None,
    ) -> None:
        self.accepted = accepted or pb.Accepted(model="talking_avatar", resume_token="tok")
        self.endless = endless
        self.summary = summary  # sent after the requests' end (None: no summary)
        self.cancelled: list[str] = []
        self.generate_started = threading.Event()
        self.generate_ended = threading.Event()
        self.address = f"127.0.0.1:{free_port()}"
        self._server = grpc.server(futures.ThreadPoolExecutor(4))
        handlers = {
            "Generate": grpc.stream_stream_rpc_method_handler(
                self._generate,
                request_deserializer=pb.GenerateRequest.FromString,
                response_serializer=pb.GenerateResponse.SerializeToString,
            ),
            "Cancel": grpc.unary_unary_rpc_method_handler(
                self._cancel,
                request_deserializer=pb.CancelRequest.FromString,
                response_serializer=pb.CancelResponse.SerializeToString,
            ),
            "ListModels": grpc.unary_unary_rpc_method_handler(
                lambda request, context: pb.ListModelsResponse(
                    models=[
                        model_info(m, ready=True, lookahead_seconds=0.1)
                        for m in catalog.MODELS.values()
                    ]
                ),
                request_deserializer=pb.ListModelsRequest.FromString,
                response_serializer=pb.ListModelsResponse.SerializeToString,
            ),
        }
        self._server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("a2v.v1.AudioToVideo", handlers)]
        )
        self._server.add_insecure_port(self.address)

    def _generate(self, requests, context):
        # headers first, as the a2v server sends them once a stream is admitted (AsyncClient
        # waits for them before it writes)
        context.send_initial_metadata(())
        self.generate_started.set()
        try:
            next(requests)  # the config
            yield pb.GenerateResponse(accepted=self.accepted)
            if self.endless:
                n = 0
                while context.is_active():
                    n += 1
                    data = b"\0" * 4096
                    yield pb.GenerateResponse(chunk=pb.MediaChunk(sequence_number=n, data=data))
                    time.sleep(0.01)
            else:
                for _ in requests:
                    pass
                if self.summary is not None:
                    yield pb.GenerateResponse(summary=self.summary)
        finally:
            self.generate_ended.set()

    def _cancel(self, request, context):
        self.cancelled.append(request.resume_token)
        return pb.CancelResponse()

    def __enter__(self) -> StubServer:
        self._server.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop(None)


def _failing_audio():
    yield pb.AudioChunk(encoded=b"RIFF....WAVE")
    raise RuntimeError("the microphone was unplugged")


def test_an_audio_source_that_fails_raises_its_own_error():
    with StubServer() as stub, Client(stub.address) as client:
        with pytest.raises(RuntimeError, match="the microphone was unplugged"):
            list(client.generate(audio=_failing_audio(), image=PORTRAIT))
        assert stub.generate_ended.wait(10)  # the call was cancelled, not left open


async def test_an_async_audio_source_that_fails_raises_its_own_error():
    async def failing():
        yield pb.AudioChunk(encoded=b"RIFF....WAVE")
        await asyncio.sleep(0.05)
        raise RuntimeError("the live source broke")

    with StubServer() as stub:
        async with AsyncClient(stub.address) as client:
            with pytest.raises(RuntimeError, match="the live source broke"):
                async for _ in client.generate(audio=failing(), image=PORTRAIT):
                    pass
        assert await asyncio.to_thread(stub.generate_ended.wait, 10)


def test_closed_stdout_stops_quietly_and_cancels_the_call():
    with StubServer(endless=True) as stub:
        process = subprocess.Popen(
            [str(A2V), "--server", stub.address, *generate("-q", "-o", "-")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None and process.stderr is not None
        assert len(process.stdout.read(20000)) == 20000  # chunks are flowing
        process.stdout.close()  # the reader goes away (a player quits, `head -c` is done)
        assert process.wait(30) == 141
        assert process.stderr.read() == b""  # quietly: no "Broken pipe", no traceback
        assert stub.generate_ended.wait(10)
        assert stub.cancelled == ["tok"]  # a resumable call is cancelled, not left detached


#: sets SIGINT's default disposition, then execs argv[1:] in the same process
_WITH_SIGINT_DEFAULT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def test_ctrl_c_cancels_the_call_and_exits_130():
    with StubServer(endless=True) as stub:
        process = subprocess.Popen(
            # Ctrl-C as a terminal delivers it: a process started with SIGINT ignored (under
            # a parent that ignores it, as a non-interactive shell's background job does)
            # keeps it ignored, and Python then installs no KeyboardInterrupt. So the CLI is
            # started through a fresh Python that sets SIGINT's default and execs it (the same
            # process). Not through subprocess's preexec_fn: that forks this process, whose
            # gRPC (the stub server) then runs in the child before the exec; under load 7 of
            # 40 such children aborted (SIGABRT) or wrote an "epoll_wait error: Bad file
            # descriptor" line into the CLI's stderr, this test's past flakes.
            [
                sys.executable,
                "-c",
                _WITH_SIGINT_DEFAULT,
                str(A2V),
                "--server",
                stub.address,
                *generate("-q", "-o", "/dev/null"),
            ],
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        )
        assert process.stderr is not None
        assert stub.generate_started.wait(30)
        time.sleep(0.3)  # chunks are flowing into /dev/null (written as it is, no .partial)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"a2v did not exit on Ctrl-C: {_dumped(process)}")
        assert process.returncode == 130
        assert process.stderr.read().decode().strip() == "a2v: interrupted"
        assert stub.generate_ended.wait(10) and stub.cancelled == ["tok"]
    assert not Path("/dev/null.partial").exists()


def test_warnings_from_accepted_are_printed_with_the_option(tmp_path):
    accepted = pb.Accepted(
        model="talking_avatar",
        unused_prompt_words=["purple"],
        ignored_settings=["sync_mode: only lipsync uses it (...)"],
        warnings=["transcript: it does not look like English (...)"],
    )
    with StubServer(accepted) as stub:
        done = a2v("--server", stub.address, *generate("-q", "-o", str(tmp_path / "x.mp4")))
    lines = done.stderr.splitlines()
    assert "a2v: warning: --sync-mode is ignored: only lipsync uses it (...)" in lines
    assert "a2v: warning: --transcript: it does not look like English (...)" in lines
    assert any(
        line.startswith("a2v: warning: --prompt words") and "purple" in line for line in lines
    )
    # the stub ends the stream without a summary: that is a failure, and no file is left
    assert (
        done.returncode == 1 and lines[-1] == "a2v: the server ended the stream without a summary"
    )
    assert not list(tmp_path.iterdir())


def test_models_lists_prompt_words_and_options():
    with StubServer() as stub:
        done = a2v("--server", stub.address, "models")
    assert done.returncode == 0, done.stderr
    avatar, lipsync = done.stdout.split("\nlipsync\t")
    assert (
        "  prompt camera: static (static, locked off, still camera); zoom_in (slow zoom in"
        in avatar
    )
    assert "  prompt delivery: calm (calm, subtle, gentle, serious)" in avatar
    assert "--transcript" in avatar and "--sync-mode" not in avatar
    assert "prompt delivery" not in lipsync and "  prompt look: warm (warm, golden)" in lipsync
    assert "--sync-mode" in lipsync and "--face-index" in lipsync and "--transcript" not in lipsync


# --- the client's checks agree with the server's -------------------------------------------
HEADS = [
    b"RIFF\x24\x00\x00\x00WAVEfmt ",
    b"RF64\xff\xff\xff\xffWAVEds64",
    b"fLaC\x00\x00\x00\x22",
    b"OggS\x00\x02" + b"\0" * 10,
    b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81",
    b"\x00\x00\x00\x20ftypisom\x00\x00",
    b"\x00\x00\x00\x08moov\x00\x00\x00\x00",
    b"\x00\x00\x00\x08wide\x00\x00\x00\x00",
    b"ID3\x04\x00\x00",
    b"\xff\xfb\x90\x64",
    b"\xff\xf1\x50\x80",
    b"\xff\xe0\x00\x00",
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
    b"\xff\xd8\xff\xe0\x00\x10JFIF",
    b"RIFF\x24\x00\x00\x00WEBPVP8 ",
    b"GIF89a\x01\x00",
    b"hello world\n",
    b"",
    b"\xff",
]


@pytest.mark.parametrize("head", HEADS)
def test_file_formats_are_told_as_the_server_tells_them(head):
    def server(detect) -> bool:
        try:
            return detect(head) is not None
        except InvalidInput:
            return False

    assert (audio_format(head) is not None) == (detect_audio_format(head) is not None)
    assert (image_format(head) is not None) == server(detect_image_format)
    assert (video_format(head) is not None) == server(detect_video_format)


@pytest.mark.parametrize(
    "options",
    [
        {"fps": 0.5},
        {"fps": 61},
        {"fps": 29.97},
        {"fps": 60},
        {"resolution": "62x62"},
        {"resolution": "64x64"},
        {"resolution": "3840x2160"},
        {"resolution": "3842x2160"},
        {"resolution": "640x360", "aspect": "16:9"},
        {"resolution": "640x360", "aspect": "1:1"},
        {"prompt": "x" * 2000},
        {"prompt": "x" * 2001},
        {"transcript": "x" * 5001},
        {"trim_start": 2, "trim_end": 2},
        {"trim_start": 86_401},
        {"expression_scale": 2.0},
        {"expression_scale": 2.01},
        {"blink_rate": 60},
        {"blink_rate": 60.5},
        {"request_id": "a\nb"},
        {"request_id": "x" * 129},
        {"range": (1.0, 0.0)},
        {"range": (2.0, 1.0)},
        {"range": (2.0, 2.0)},
        {"range": (1e6, 0.0)},
    ],
)
def test_option_checks_agree_with_the_server(options):
    try:
        config = GenerateOptions(**options).to_proto()
    except OptionError as error:
        client_field = error.violations[0][0]
        # what the server says of the same value (sent as the proto allows it)
        raw = GenerateOptions(**{k: v for k, v in options.items()})
        config = _unchecked_config(raw)
        with pytest.raises(InvalidInput) as info:
            spec_from_config(config)
        assert info.value.field.startswith(client_field) or client_field.startswith(
            info.value.field
        )
        return
    spec_from_config(config)  # the server takes what the client lets through


def _unchecked_config(options: GenerateOptions) -> pb.GenerateConfig:
    """The config the options stand for, built without the client's checks."""
    out = pb.OutputOptions(fps=options.fps)
    if options.resolution:
        w, h = (int(v) for v in options.resolution.split("x"))
        out.resolution.size.width, out.resolution.size.height = w, h
    if options.aspect:
        out.aspect_ratio = pb.AspectRatio.Value("ASPECT_RATIO_" + options.aspect.replace(":", "_"))
    animation = pb.AnimationOptions()
    for name in ("expression_scale", "blink_rate"):
        if getattr(options, name) is not None:
            setattr(animation, name, getattr(options, name))
    return pb.GenerateConfig(
        output=out,
        prompt=options.prompt,
        transcript=options.transcript,
        request_id=options.request_id,
        trim=pb.AudioTrim(start_seconds=options.trim_start, end_seconds=options.trim_end),
        animation=animation,
        range=None
        if options.range is None
        else pb.TimeRange(start_seconds=options.range[0], end_seconds=options.range[1]),
    )


# --- the server's report of settings with no effect ----------------------------------------
def _spec(**config):
    return spec_from_config(pb.GenerateConfig(**config))


def test_ignored_settings_of_the_talking_avatar():
    spec, model = _spec(sync_mode=pb.SYNC_MODE_LOOP, face=pb.FaceSelector(index=1))
    found = ignored_settings(spec, model, 25.0)
    assert found[0].startswith("sync_mode: only lipsync uses it")
    assert found[1].startswith("face: only lipsync uses it; talking_avatar animates the largest")
    spec, model = _spec()
    assert ignored_settings(spec, model, 25.0) == ()


def test_ignored_settings_of_lipsync():
    spec, model = _spec(
        model="lipsync",
        output=pb.OutputOptions(fps=30),
        transcript="hello there",
        animation=pb.AnimationOptions(blink_rate=5),
    )
    found = ignored_settings(spec, model, 24.0)
    assert [f.split(":")[0] for f in found] == ["output.fps", "transcript", "animation.blink_rate"]
    assert "keeps the speaker video's frame rate (24 fps)" in found[0]
    assert "only talking_avatar uses it" in found[1]
    # the video's own rate, or the default, asked explicitly: nothing to report
    spec, model = _spec(model="lipsync", output=pb.OutputOptions(fps=24))
    assert ignored_settings(spec, model, 24.0) == ()


@pytest.mark.parametrize(
    ("transcript", "ignored", "warned"),
    [
        ("The quick brown fox jumps over the lazy dog.", False, False),
        ("Hello there, friend.", False, False),
        ("Bonjour, je m'appelle Marie et j'habite à Paris depuis dix ans.", False, True),
        ("Guten Tag, ich heiße Anna und ich wohne seit zehn Jahren in Berlin.", False, True),
        ("Hola, me llamo Carlos y vivo en Madrid desde hace cinco años.", False, True),
        ("Привет, как дела? Меня зовут Иван.", True, False),
        ("你好，世界", True, False),  # noqa: RUF001
        ("", False, False),
    ],
)
def test_transcript_language_rule(transcript, ignored, warned):
    spec, model = _spec(transcript=transcript)
    assert any(s.startswith("transcript:") for s in ignored_settings(spec, model, 25)) == ignored
    assert any(s.startswith("transcript:") for s in setting_warnings(spec, model)) == warned


def test_model_info_lists_vocabulary_and_settings():
    avatar = model_info(catalog.TALKING_AVATAR, ready=True, lookahead_seconds=0.1)
    lipsync = model_info(catalog.LIPSYNC, ready=True, lookahead_seconds=0.1)
    kinds = {e.kind for e in avatar.prompt_effects}
    assert kinds == {"camera", "look", "delivery"}
    assert {e.kind for e in lipsync.prompt_effects} == {"camera", "look"}
    zoom = next(e for e in avatar.prompt_effects if e.effect == "zoom_in")
    assert "slow zoom in" in zoom.phrases
    assert "transcript" in avatar.settings and "sync_mode" not in avatar.settings
    assert "sync_mode" in lipsync.settings and "animation.blink_rate" not in lipsync.settings


# --- the README ------------------------------------------------------------------------------
def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}\n")
    return text[start : text.index("\n## ", start + 1)]


def test_readme_synopsis_is_the_parsers():
    cli = _readme_section("The CLI")
    block = re.search(r"```text\n(.*?)```", cli, re.S)
    assert block is not None
    assert block.group(1) == synopsis(), "update README 'The CLI' from a2v_client.cli.synopsis()"


def test_readme_cli_examples_parse():
    cli = _readme_section("The CLI")
    block = re.search(r"```sh\n(.*?)```", cli, re.S)
    assert block is not None
    parser = build_parser()
    for line in block.group(1).splitlines():
        command = shlex.split(line.split(" | ")[0])
        assert command[0] == "a2v", line
        parser.parse_args(command[1:])  # exits (status 2) on a mismatch


def test_help_says_what_each_option_does_and_its_default():
    text = a2v("generate", "--help").stdout
    flat = " ".join(text.split())
    assert "the uncovered edges get blurred bands" in flat  # crop's fallback
    assert "exit status:" in text and "141" in text and "130" in text
    for words in [
        "Default: source for lipsync, 720p otherwise",
        "default 25)",
        "(default 1)",
        "(default 15)",
        "bounce (default",
    ]:
        assert words in flat, words


def test_summary_line_and_lipsync_mouth_paths(tmp_path):
    mouths = pb.MouthSources(passed_through=15, warped=180, retrieved=60)
    lipsync = pb.Summary(frames=255, duration_seconds=10.2, mouth_sources=mouths)
    with StubServer(pb.Accepted(model="lipsync"), summary=lipsync) as stub:
        done = a2v("--server", stub.address, *generate("-o", str(tmp_path / "l.mp4")))
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[-2].startswith("a2v: wrote ") and "255 frames, 10.20 s" in lines[-2]
    assert lines[-1] == "a2v: mouth: 180 warped, 60 from the speaker's own video, 15 without a face"
    # other models (and older lipsync servers) leave mouth_sources unset: no line
    with StubServer(summary=pb.Summary(frames=25, duration_seconds=1.0)) as stub:
        done = a2v("--server", stub.address, *generate("-o", str(tmp_path / "t.mp4")))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1].startswith("a2v: wrote ")
    assert "mouth" not in done.stderr
