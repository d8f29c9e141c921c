"""Property-based tests (hypothesis): request validation and the media decoders, in process.

``spec_from_config`` on any GenerateConfig either returns a spec that the rest of the server can
use as is, or raises an A2VError naming the field; the decoders on any bytes return a picture /
audio or raise InvalidInput / ResourceExhausted, never anything else.

Runs are deterministic (``derandomize``) so the suite never flakes; ``HYPOTHESIS_PROFILE=fuzz``
explores with fresh randomness, and ``HYPOTHESIS_SCALE=N`` runs N times the examples.
"""

from __future__ import annotations

import math
import os
import time

import pytest
from hostile_media import flip, png, wav_header
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_server.errors import A2VError, InvalidInput, ResourceExhausted
from a2v_server.media.audio import EncodedAudioDecoder, PcmDecoder
from a2v_server.media.audio_blocks import OUTPUT_RATE
from a2v_server.media.image import decode_image
from a2v_server.media.spool import Spool
from a2v_server.media.video import SourceVideo, detect_video_format
from a2v_server.pipeline import framing
from a2v_server.transport.config import spec_from_config

settings.register_profile(
    "hostile",
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("fuzz", parent=settings.get_profile("hostile"), derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "hostile"))
#: HYPOTHESIS_SCALE=10 runs ten times the examples (kept modest for `make test`)
SCALE = int(os.environ.get("HYPOTHESIS_SCALE", "1"))

# --- GenerateConfig over every field, valid and not ---------------------------------------------
INT32 = st.integers(-(2**31), 2**31 - 1)
UINT32 = st.integers(0, 2**32 - 1)
enum = st.one_of(st.integers(0, 8), INT32)
any_float = st.floats(allow_nan=True, allow_infinity=True)
float32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
seconds = st.one_of(st.floats(-5, 100), any_float, st.just(0.0))
short_text = st.text(max_size=40)


def _long(limit: int) -> st.SearchStrategy[str]:
    return st.sampled_from(["", "a" * limit, "a" * (limit + 1), "\U0001f600" * (limit + 1)])


size = st.builds(
    pb.Size,
    width=st.one_of(st.integers(0, 4000), UINT32),
    height=st.one_of(st.integers(0, 4000), UINT32),
)
resolution = st.one_of(
    st.builds(pb.Resolution),
    st.builds(pb.Resolution, preset=enum),
    st.builds(pb.Resolution, size=size),
)
output = st.builds(
    pb.OutputOptions,
    container=enum,
    video_codec=enum,
    audio_codec=enum,
    fps=st.one_of(st.floats(0, 70), any_float, st.sampled_from([0.0, 1.0, 29.97, 60.0])),
    resolution=resolution,
    aspect_ratio=enum,
    fit=enum,
)


@st.composite
def animation(draw) -> pb.AnimationOptions:
    message = pb.AnimationOptions()
    for name in ("expression_scale", "head_motion_scale", "blink_rate"):
        if draw(st.booleans()):
            setattr(message, name, draw(st.one_of(st.floats(-1, 70, width=32), float32)))
    return message


box = st.builds(pb.Box, x0=float32, y0=float32, x1=float32, y1=float32)
face = st.one_of(
    st.builds(pb.FaceSelector),
    st.builds(pb.FaceSelector, index=UINT32),
    st.builds(pb.FaceSelector, box=box),
)
configs = st.builds(
    pb.GenerateConfig,
    model=st.one_of(st.sampled_from(["", "talking_avatar", "lipsync", "nope"]), short_text),
    output=output,
    prompt=st.one_of(short_text, _long(2000)),
    trim=st.builds(pb.AudioTrim, start_seconds=seconds, end_seconds=seconds),
    seed=st.integers(0, 2**64 - 1),
    request_id=st.one_of(short_text, st.text(min_size=120, max_size=140)),
    transcript=st.one_of(short_text, _long(5000)),
    animation=animation(),
    sync_mode=enum,
    face=face,
    include_timeline=st.booleans(),
)


@settings(max_examples=400 * SCALE)
@given(configs)
def test_spec_from_config_accepts_a_usable_spec_or_names_the_field(config):
    try:
        spec, model = spec_from_config(config)
    except A2VError as error:
        assert error.message.strip()
        assert error.field and error.field.startswith("config"), error.field
        return
    assert model.name == spec.model
    assert math.isfinite(spec.fps) and 1 <= spec.fps <= 60
    assert spec.aspect is None or spec.aspect in framing.ASPECTS
    assert spec.fit in ("crop", "pad")
    if spec.size is not None:
        w, h = spec.size
        assert spec.short_side is None and w % 2 == 0 and h % 2 == 0
        assert min(w, h) >= framing.MIN_SIDE and max(w, h) <= framing.MAX_SIDE
    else:
        # a preset's short side; None: SOURCE asked for, or unset (the model's default)
        assert spec.short_side in (480, 720, 1080, None)
        assert not spec.source_size or spec.short_side is None
    assert math.isfinite(spec.trim_start) and spec.trim_start >= 0
    assert spec.trim_end is None or (
        math.isfinite(spec.trim_end) and spec.trim_end > spec.trim_start
    )
    for value, top in (
        (spec.expression_scale, 2),
        (spec.head_motion_scale, 2),
        (spec.blink_rate, 60),
    ):
        assert value is None or (math.isfinite(value) and 0 <= value <= top)
    assert 0 < len(spec.request_id) <= 128 and spec.request_id.isprintable()
    assert spec.seed >= 1 and len(spec.prompt) <= 2000 and len(spec.transcript) <= 5000
    assert spec.sync_mode in ("bounce", "loop", "cut_off", "silence", "remap")
    if spec.face_box is not None:
        x0, y0, x1, y1 = spec.face_box
        assert all(map(math.isfinite, spec.face_box)) and x1 > x0 and y1 > y0
    # ... and what consumes the spec takes it without a second opinion
    for source in ((640, 480), (300, 1000)):
        w, h = framing.output_size(
            source, aspect=spec.aspect, short_side=spec.short_side, size=spec.size
        )
        assert w % 2 == 0 and h % 2 == 0 and max(w, h) <= framing.MAX_SIDE
    PcmDecoder(OUTPUT_RATE, 2, trim_start=spec.trim_start, trim_end=spec.trim_end)


# --- the media decoders on arbitrary bytes -------------------------------------------------------
ALLOWED = (InvalidInput, ResourceExhausted)
IMAGE_MAGIC = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"RIFF\0\0\0\0WEBPVP8 ",
    b"RIFF\0\0\0\0WEBPVP8X",
]
AUDIO_MAGIC = [b"", b"RIFF\0\0\0\0WAVE", b"fLaC", b"OggS", b"\x1a\x45\xdf\xa3", b"\0\0\0\x18ftyp"]
AUDIO_MAGIC += [b"ID3", b"\xff\xfb", b"\xff\xf1"]


def _bytes_like(seeds: list[bytes], magic: list[bytes]) -> st.SearchStrategy[bytes]:
    """Random bytes, random bytes behind a format's magic, and seeds mutated in place."""
    mutated = st.builds(
        lambda seed, where, count, keep: flip(seed, where, count)[: max(keep, 1)],
        st.sampled_from(seeds),
        st.integers(0, 400),
        st.integers(1, 64),
        st.integers(1, 1 << 16),
    )
    tail = st.binary(max_size=3000)
    return st.one_of(tail, st.builds(bytes.__add__, st.sampled_from(magic), tail), mutated)


IMAGE_SEEDS = [png(32, 32, bytes(32 * 97)), png(100000, 100000), png(1, 1, bytes(4))]


@settings(max_examples=200 * SCALE)
@given(data=st.data())
def test_decode_image_raises_only_domain_errors(media, data):
    blob = data.draw(_bytes_like([*IMAGE_SEEDS, *media.image.values()], IMAGE_MAGIC))
    try:
        rgb = decode_image(blob, max_pixels=4_000_000)
    except ALLOWED as error:
        assert error.message and error.field == "image"
        return
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.shape[0] * rgb.shape[1] <= 4_000_000


def _decode_audio(blob: bytes) -> int:
    decoder = EncodedAudioDecoder(max_seconds=60)
    for i in range(0, len(blob), 1000):  # in pieces, as the server receives them
        decoder.write(blob[i : i + 1000])
    decoder.end()
    return sum(block.model_pcm.size for block in decoder.blocks())


@settings(max_examples=200 * SCALE)
@given(data=st.data())
def test_audio_decoder_raises_only_domain_errors(media, data):
    seeds = [*media.audio.values(), wav_header(16000, 1, 800), wav_header(8000, 2, 800)]
    blob = data.draw(_bytes_like(seeds, AUDIO_MAGIC))
    start = time.monotonic()
    try:
        _decode_audio(blob)
    except ALLOWED as error:
        assert error.message and error.field == "audio"
    assert time.monotonic() - start < 10


@settings(max_examples=300 * SCALE)
@given(st.binary(max_size=64))
def test_detect_video_format_is_an_allowlist(head):
    try:
        assert detect_video_format(head) in ("mov", "matroska")
    except InvalidInput as error:
        assert "MP4, MOV or WebM" in error.message


@settings(max_examples=60 * SCALE)
@given(data=st.data())
def test_video_decoding_raises_only_domain_errors(media, data):
    blob = data.draw(_bytes_like([media.video, media.audio_only_mp4], [b"\0\0\0\x18ftyp"]))
    spool = Spool(max_bytes=10**7)
    video = SourceVideo(spool, max_pixels=4_000_000, max_frames=100)
    try:
        spool.write(blob)
        spool.finish()
        video.open()
        slot = 0
        while (picture := video.frame(slot)) is not None:
            assert (picture.i420 if picture.i420 is not None else picture.rgb).ndim in (2, 3)
            slot += 1
        for again in (slot - 1, 0, slot // 2):  # and again, seeking in the upload
            assert video.frame(max(0, again)) is not None
    except ALLOWED as error:
        assert error.message and error.field == "video"
    finally:
        video.close()
        spool.close()


@pytest.mark.parametrize("rate", [0, 7, 7999, 192001, 10**7])
def test_pcm_decoder_refuses_declared_rates_outside_the_contract(rate):
    with pytest.raises(InvalidInput, match="sample rate"):
        PcmDecoder(rate, 1)
