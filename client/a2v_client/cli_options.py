"""The options of ``a2v``, with their help texts: the connection options that every command
takes, and those of ``a2v generate``. ``cli_parser`` puts them together into the command line.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from ._base import DEFAULT_ADDRESS
from .files import AUDIO_FORMATS, IMAGE_FORMATS, VIDEO_FORMATS
from .options import ANIMATION, ASPECTS, FITS, MAX_FPS, MIN_FPS, SYNC_MODES


def connection_options(parser: argparse.ArgumentParser, *, hidden: bool) -> None:
    """--server, --api-key and the TLS options. The main parser documents them and holds the
    defaults; each command accepts them too (hidden, no defaults), so that they work after the
    command as well."""

    def add(*flags: str, default: Any = None, help: str, **kwargs: Any) -> None:
        if hidden:
            parser.add_argument(*flags, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)
        else:
            parser.add_argument(*flags, default=default, help=help, **kwargs)

    add(
        "--server",
        default=None,
        metavar="HOST:PORT",
        help=f"the a2v server (default: $A2V_SERVER, else {DEFAULT_ADDRESS})",
    )
    add(
        "--api-key",
        default=None,
        metavar="KEY",
        help="API key, sent as 'authorization: Bearer KEY' (default: $A2V_API_KEY; prefer the "
        "variable: arguments are visible to other users in the process list)",
    )
    add(
        "--tls",
        action="store_true",
        default=False,
        help="connect with TLS, verifying the server against the system's CAs (implied by the "
        "--tls-* options)",
    )
    add(
        "--tls-ca",
        metavar="PEM",
        help="connect with TLS, verifying the server against this CA certificate "
        "(default: $A2V_TLS_CA)",
    )
    add(
        "--tls-cert",
        metavar="PEM",
        help="client certificate for mutual TLS, with --tls-key (default: $A2V_TLS_CERT)",
    )
    add("--tls-key", metavar="PEM", help="its private key (default: $A2V_TLS_KEY)")


def add_generate(sub: Any, formatter: Any, epilog: str) -> None:
    """``a2v generate`` (``epilog``: the exit statuses, as ``a2v --help`` shows them)."""
    p = sub.add_parser(
        "generate",
        help="render a video from audio and a portrait (or a speaker video)",
        description=paragraphs(
            "Render a video with the sound baked in: a talking head from a portrait (--image, "
            "model talking_avatar), or a speaker video re-animated to new audio (--video, "
            "model lipsync). The output is fragmented MP4 (H.264 + AAC), written as FILE.partial "
            "and renamed when complete, or streamed to stdout with -o -.",
            "Connection options (--server, --api-key, --tls...) may come before or after "
            "'generate' (see a2v --help). Unset options take the server's defaults, given "
            "below; settings a model does not use are reported as warnings.",
        ),
        epilog=epilog,
        formatter_class=formatter,
    )
    connection_options(p, hidden=True)
    p.add_argument(
        "--audio",
        required=True,
        metavar="FILE",
        help=f"the sound: {AUDIO_FORMATS}, or - to read it from stdin. The video is as long as "
        "the (trimmed) audio",
    )
    visual = p.add_mutually_exclusive_group(required=True)
    visual.add_argument(
        "--image",
        metavar="FILE",
        help=f"a portrait ({IMAGE_FORMATS}) with one clearly visible face: talking avatar",
    )
    visual.add_argument(
        "--video",
        metavar="FILE",
        help=f"a video of a speaker ({VIDEO_FORMATS}): lipsync re-animates the mouth and "
        "keeps the video's frame rate (above 60 fps: half or a quarter of it)",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="the .mp4 to write, or - to stream the fragmented MP4 to stdout as it is made "
        "(a2v generate ... -o - | ffplay -)",
    )
    p.add_argument(
        "--model",
        default="",
        metavar="NAME",
        help="the model (a2v models lists them; default: talking_avatar with --image, lipsync "
        "with --video)",
    )
    p.add_argument(
        "--aspect",
        choices=ASPECTS,
        metavar="{" + ",".join(ASPECTS) + "}",
        help="the picture's shape (default: source, the shape of the portrait or video)",
    )
    p.add_argument(
        "--resolution",
        metavar="{480p,720p,1080p,source,WxH}",
        help="a preset naming the short side, source (the portrait's or video's own size, not "
        "rescaled), or an exact size such as 640x360 (even, 64..3840; its shape is the aspect). "
        "Default: source for lipsync, 720p otherwise",
    )
    p.add_argument(
        "--fit",
        choices=FITS,
        help="crop (default): fill the frame and cut what does not fit, centred on the face; "
        "where a crop would cut into the face, the picture is zoomed out just enough to keep "
        "it whole and the uncovered edges get blurred bands, as with pad; a small face is "
        "zoomed in on. pad: show the whole picture, the empty bands filled with a blurred, "
        "darkened copy of it",
    )
    p.add_argument(
        "--fps",
        type=float,
        metavar="N",
        help=f"frames per second, {MIN_FPS:g}..{MAX_FPS:g} (29.97 too; default 25). Lipsync "
        "keeps the video's own rate",
    )
    p.add_argument(
        "--prompt",
        default="",
        metavar="TEXT",
        help="camera, look and delivery words, e.g. 'slow zoom in, warm, calm' (a2v models "
        "lists the words each model understands; others are reported as having no effect)",
    )
    p.add_argument(
        "--transcript",
        default="",
        metavar="TEXT",
        help="what is said, in English (e.g. the text given to a TTS engine): the mouth "
        "follows its exact phones. Talking avatar only; leave it out for other languages",
    )
    scales = ANIMATION
    p.add_argument(
        "--expression-scale",
        type=float,
        metavar="X",
        help=f"mouth, brow and facial motion, 0 (still) .. {scales['expression_scale'][0]:g} "
        f"(default {scales['expression_scale'][1]:g}). Talking avatar only",
    )
    p.add_argument(
        "--head-motion",
        type=float,
        metavar="X",
        help=f"head motion (nods, sway, bob on the beat), 0 .. "
        f"{scales['head_motion_scale'][0]:g} (default {scales['head_motion_scale'][1]:g}). "
        "Talking avatar only",
    )
    p.add_argument(
        "--blink-rate",
        type=float,
        metavar="N",
        help=f"blinks per minute, 0 .. {scales['blink_rate'][0]:g} (default "
        f"{scales['blink_rate'][1]:g}). Talking avatar only",
    )
    p.add_argument(
        "--sync-mode",
        choices=SYNC_MODES,
        help="lipsync only, when the video and the audio differ in length (the output follows "
        "the audio): bounce (default: forward, then backward), loop, cut_off (stop at the "
        "shorter), silence (play the video once; pad the audio), remap (stretch the video)",
    )
    p.add_argument(
        "--face-index",
        type=int,
        metavar="N",
        help="lipsync only: which face to re-animate, 0 = the largest (default), 1 = the next",
    )
    p.add_argument(
        "--trim-start",
        type=float,
        default=0.0,
        metavar="S",
        help="skip the audio before this many seconds (default 0)",
    )
    p.add_argument(
        "--trim-end",
        type=float,
        default=0.0,
        metavar="S",
        help="stop the audio at this many seconds (default 0: at its end)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed for reproducible output (blinks, grain, handheld camera; default 0: the "
        "server picks one and reports it)",
    )
    p.add_argument(
        "--timeline",
        metavar="FILE",
        help="also write the per-frame animation (mouth opening, viseme, head pose, blink) to "
        "this file, one JSON object per line, and the audio's beat grid as the last line",
    )
    p.add_argument(
        "--range",
        metavar="START:END",
        help="render only this part of the clip, in seconds (END empty: to the end), e.g. "
        "4.5:9: the same frames and times as the whole clip's, widened to its keyframes "
        "(every second) so the part can be spliced into it",
    )
    p.add_argument(
        "--speakers",
        metavar="SPEC",
        help="several people: who speaks when, as START:END=FACE turns in seconds (END empty: "
        "to the end), e.g. 0:4.2=0,4.2:9=1; or by audio channel, e.g. ch0=1,ch1=0 (a dialogue "
        "with a microphone each). FACE is an index from 'a2v faces'. Outside its turns a face "
        "keeps the video's pixels (lipsync) or idles (portrait)",
    )
    p.add_argument(
        "--report",
        metavar="FILE",
        help="write each fragment's quality report to this file, one JSON object per line: "
        "its time span, share of frames with a tracked face, tracking confidence, how well "
        "the mouth followed the voice, and whether a face was lost, the video cut or looped",
    )
    p.add_argument(
        "--realtime",
        action="store_true",
        help="send the audio like a live source: decoded here to raw PCM and sent in 20 ms "
        "pieces at real-time pace (video arrives while the audio is still being sent); with "
        "--video, the video goes like a live camera's too: remuxed here to fragmented MP4, "
        "each frame sent at its time (live lipsync)",
    )
    p.add_argument(
        "--raw-frames",
        action="store_true",
        help="with --realtime --video: send the video as uncompressed I420 frames, as a "
        "capture card would, instead of fragmented MP4 (decoded here; about 1.4 MB a frame "
        "at 720p, for a fast local network)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar and no summary (warnings and errors are still printed)",
    )


def add_analyze(sub: Any, formatter: Any, epilog: str) -> None:
    """``a2v analyze``."""
    p = sub.add_parser(
        "analyze",
        help="what the models hear in an audio: kind, voice, phones, visemes, jaw, beats (JSON)",
        description=paragraphs(
            "Analyse an audio file without rendering, as the models hear it: its kind per "
            "segment (speech, music, other), the voiced ranges, phones and visemes with their "
            "times, the jaw-opening curve, and for music the tempo, beats, downbeats and "
            "onsets. Written as one JSON document (times in seconds), for drawing under a "
            "waveform and snapping edits to beats.",
        ),
        epilog=epilog,
        formatter_class=formatter,
    )
    connection_options(p, hidden=True)
    p.add_argument(
        "--audio", required=True, metavar="FILE", help=f"the sound: {AUDIO_FORMATS}, or - (stdin)"
    )
    p.add_argument(
        "-o",
        "--output",
        default="-",
        metavar="FILE",
        help="where to write the JSON (default: - for stdout)",
    )
    p.add_argument(
        "--transcript",
        default="",
        metavar="TEXT",
        help="what is said, in English: the phones are aligned to it instead of recognised",
    )
    p.add_argument(
        "--fps",
        type=float,
        metavar="N",
        help="rate of the jaw-opening curve: the frame rate of the video it would drive "
        f"({MIN_FPS:g}..{MAX_FPS:g}, default 25)",
    )
    p.add_argument(
        "--trim-start", type=float, default=0.0, metavar="S", help="skip the audio before S"
    )
    p.add_argument(
        "--trim-end", type=float, metavar="S", help="ignore the audio after S (default: the end)"
    )


def add_faces(sub: Any, formatter: Any, epilog: str) -> None:
    """``a2v faces``."""
    p = sub.add_parser(
        "faces",
        help="the faces in a portrait or a speaker video: index, box, when each is visible",
        description=paragraphs(
            "List the faces the server finds in a portrait or a speaker video, one line each: "
            "the index that --face-index takes (largest first in the first frame with faces; "
            "faces that appear later follow), its box in the input's pixels, and for a video "
            "when the face is in the picture (the whole video is looked at, twice a second).",
        ),
        epilog=epilog,
        formatter_class=formatter,
    )
    connection_options(p, hidden=True)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--image", metavar="FILE", help=f"a portrait ({IMAGE_FORMATS})")
    what.add_argument("--video", metavar="FILE", help=f"a video ({VIDEO_FORMATS})")
    p.add_argument("--json", action="store_true", help="print the FacesResponse as JSON")


def paragraphs(*texts: str) -> str:
    return "\n\n".join(textwrap.fill(t, 88) for t in texts)
