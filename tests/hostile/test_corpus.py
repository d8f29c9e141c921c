"""Every case of the hostile corpus against the real server: the documented status, a message
that names the field or the fix, in bounded time, and a healthy server afterwards."""

from __future__ import annotations

import time

import grpc
import pytest
from corpus import CASES

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_client import GenerateOptions, file_audio

#: no malformed request may take longer than this (a hang is a failure)
BOUND_SECONDS = 30.0


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 100


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_case(name, generate_call, hostile_client, media):
    case = CASES[name]
    start = time.monotonic()
    try:
        responses = list(generate_call(iter(case.build(media)), timeout=2 * BOUND_SECONDS))
        code, details = "OK", ""
    except grpc.RpcError as error:
        code, details = error.code().name, error.details() or ""
    elapsed = time.monotonic() - start
    assert elapsed < BOUND_SECONDS, f"took {elapsed:.1f} s"
    assert code == case.code, f"{code}: {details}"
    if code == "OK":
        assert responses[-1].HasField("summary") and responses[-1].summary.frames > 0
    else:
        assert case.phrase.lower() in details.lower(), details
    assert hostile_client.health() == "SERVING"


def test_get_model_with_a_name_that_is_not_utf8(hostile_stack, hostile_client):
    with grpc.insecure_channel(hostile_stack.address) as channel:
        get_model = channel.unary_unary(
            "/a2v.v1.AudioToVideo/GetModel",
            request_serializer=lambda raw: raw,
            response_deserializer=pb.ModelInfo.FromString,
        )
        with pytest.raises(grpc.RpcError) as info:
            get_model(b"\x0a\x03\xed\xa0\x80", timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "UTF-8" in info.value.details()
    assert hostile_client.health() == "SERVING"


def test_still_renders_after_the_corpus(hostile_client, media):
    responses = list(
        hostile_client.generate(
            audio=file_audio(media.speech),
            image=media.image["png"],
            options=GenerateOptions(resolution="128x128"),
        )
    )
    assert responses[-1].HasField("summary") and responses[-1].summary.frames > 0
    assert hostile_client.health() == "SERVING"
