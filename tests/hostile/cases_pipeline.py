"""Hostile cases, round two: pipeline. Registered into the corpus by importing this module."""

from __future__ import annotations

# --- visual input: work budget, small faces in large photos, picture shape (issues 6, 10, 11) ---
# Output pixel rate (max_output_pixel_rate, 1920x1080x60) is refused up front with the numbers
# (a lipsync video's decoded frames are never stored: its temporary disk is the upload); a face
# too small for the downscaled analysis is found in full-resolution tiles; thin pictures never
# reach the model.
import io
import time

import av
import cv2
import numpy as np
from corpus import END, EXHAUSTED, INVALID, add, config, encoded, image, output, video

from a2v.v1 import audio_to_video_pb2 as pb


def _clip(frames: int, fps: int, width: int, height: int) -> bytes:
    """An H.264 MP4 of ``frames`` flat frames (its header gives the duration)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for k in range(frames):
            img = np.full((height, width, 3), 40 + k % 160, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _jpeg(rgb: np.ndarray) -> bytes:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def _faces_photo(width: int, height: int, face_px: int, centres) -> bytes:
    """A grey canvas with skimage's astronaut pasted so that her face (dlib's box) is
    ``face_px`` wide, centred at each of ``centres``."""
    import skimage.data

    head = skimage.data.astronaut()[20:240, 120:330]  # face 88 px wide, centred at (103, 107)
    s = face_px / 88
    small = cv2.resize(head, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width, 3), 128, np.uint8)
    for cx, cy in centres:
        x, y = int(cx - 103 * s), int(cy - 107 * s)
        canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    return _jpeg(canvas)


def _thin(width: int, height: int) -> bytes:
    return _jpeg(np.full((height, width, 3), 150, np.uint8))


def _photo_case(photo, head: pb.GenerateRequest | None = None):
    return lambda m: [head or config(), image(photo()), *encoded(m.audio["wav"]), END]


def _video_case(clip, **out):
    head = config(model="lipsync", output=pb.OutputOptions(**out))
    return lambda m: [head, video(clip()), *encoded(m.audio["wav"]), END]


_4K = pb.Resolution(size=pb.Size(width=3840, height=2160))
add(
    "visual/portrait-at-3840x2160-25fps",
    EXHAUSTED,
    "3840x2160 at 25 fps is 207 Mpx/s of output, over the limit of 124 Mpx/s: ask for 1080p",
    lambda m: [
        output(resolution=_4K, fps=25),
        image(m.image["jpg"]),
        *encoded(m.audio["wav"]),
        END,
    ],
)
add(  # the report's 4.7 KB clip: 64x64, 120 frames, asked for at 4K (was 293 s, 4 GB, 5.7 GB disk)
    "visual/lipsync-64px-120-frames-at-3840x2160",
    EXHAUSTED,
    "207 Mpx/s of output",
    _video_case(lambda: _clip(120, 25, 64, 64), resolution=_4K),
)
add("visual/image-16x4000", INVALID, "250 times as tall", _photo_case(lambda: _thin(16, 4000)))
add("visual/image-4000x16", INVALID, "the limit is 4:1", _photo_case(lambda: _thin(4000, 16)))
add(
    "visual/video-16x1000",
    INVALID,
    "the limit is 4:1",
    _video_case(lambda: _clip(10, 10, 16, 1000)),
)
# Small faces in large photos: not found at 1280 px, found in the full-resolution tiles.
add(
    "visual/face-100px-in-4000x3000",
    "OK",
    "",
    _photo_case(lambda: _faces_photo(4000, 3000, 100, [(3100, 900)])),
)
add(
    "visual/face-64px-in-4000x3000-across-tile-edges",
    "OK",
    "",
    _photo_case(lambda: _faces_photo(4000, 3000, 64, [(1280, 860)])),
)
add(
    "visual/group-of-8-faces-70px-in-3000x2000",
    "OK",
    "",
    _photo_case(
        lambda: _faces_photo(
            3000, 2000, 70, [(400 + 700 * i, 600 + 800 * j) for i in range(4) for j in range(2)]
        )
    ),
)
add(
    "visual/face-40px-in-4000x3000",
    "OK",
    "",
    _photo_case(lambda: _faces_photo(4000, 3000, 40, [(2000, 1500)])),
)
add(
    "visual/face-12px-in-4000x3000",
    INVALID,
    "at least 40 pixels wide",
    _photo_case(lambda: _faces_photo(4000, 3000, 12, [(2000, 1500)])),
)


# --- pacing and frame counts (issues 2, 7, 9) ----------------------------------------------------
def _trickled_image(m):
    """One byte of the portrait every half second: each message well within the idle timeout
    (3 s here), the upload far below min_upload_bytes_per_second."""
    yield config()
    data = m.image["png"]
    for k in range(40):
        yield image(data[k : k + 1])
        time.sleep(0.5)


add("pace/trickled-image", "DEADLINE_EXCEEDED", "upload is too slow", _trickled_image)


def _pcm_ms(ms: int) -> pb.GenerateRequest:
    data = (np.sin(np.arange(16 * ms) / 5) * 8000).astype("<i2").tobytes()
    return pb.GenerateRequest(
        audio=pb.AudioChunk(pcm=pb.PcmChunk(data=data, sample_rate=16000, channels=1))
    )


def _lipsync_audio(ms: int):
    return lambda m: [config(model="lipsync"), video(m.video), _pcm_ms(ms), END]


# the seed video runs at 10 fps: half a frame is 50 ms there (20 ms at the default 25 fps)
add("pace/lipsync-30ms-under-half-a-source-frame", INVALID, "at 10 fps", _lipsync_audio(30))
add("pace/lipsync-50ms-half-a-source-frame", "OK", "", _lipsync_audio(50))
add("pace/lipsync-250ms-2.5-source-frames", "OK", "", _lipsync_audio(250))
