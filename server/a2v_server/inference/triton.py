"""The Backend on Triton: face analysis and streamed rendering over tritonclient (gRPC, asyncio).

This module and ``sequence.py`` are the only users of tritonclient, and the only places that
know the models' tensor names (each model's ``config.pbtxt`` documents them).
"""

from __future__ import annotations

import logging
import time

import grpc
import numpy as np
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException

from a2v_server.catalog import ANALYSIS_MODEL, AVATAR_MODEL, FACE_MODEL, LIPSYNC_MODEL
from a2v_server.domain import Analysis
from a2v_server.errors import Unavailable
from a2v_server.inference.analysis_reply import parse_analysis
from a2v_server.inference.backend import (
    AnalysisOptions,
    AvatarOptions,
    Face,
    LipsyncOptions,
    ModelStream,
    remaining_seconds,
)
from a2v_server.inference.errors import map_triton_error
from a2v_server.inference.sequence import TritonSequenceStream
from a2v_server.inference.wire import WireClient
from a2v_server.observability.metrics import TRITON_SECONDS
from a2v_server.observability.tracing import trace_headers

log = logging.getLogger(__name__)

#: points of face_landmarks' MESH per face (MediaPipe's face mesh with irises)
MESH_POINTS = 478
#: tritonclient's own channel options (no message size limit), and a short reconnect backoff:
#: gRPC's default grows to minutes while a Triton is down, so a restarted one would sit unused
#: (measured: still "not ready" 2.5 s after it was back); at most 1 s here
CHANNEL_ARGS = [
    ("grpc.max_send_message_length", 2**31 - 1),
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class TritonBackend:
    """One tritonclient (gRPC, asyncio) client per server process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = aioclient.InferenceServerClient(url, channel_args=CHANNEL_ARGS)
        self._inputs: dict[str, set[str]] = {}
        self._lookahead: dict[str, float] = {}

    async def ready(self, models: tuple[str, ...]) -> bool:
        try:
            if not await self._client.is_server_ready(client_timeout=2.0):
                return False
            for name in models:
                if not await self._client.is_model_ready(name, client_timeout=2.0):
                    return False
            return True
        except (InferenceServerException, grpc.RpcError):
            return False

    async def analyze_faces(self, image: np.ndarray) -> list[Face]:
        try:
            sent = time.monotonic()
            result = await WireClient(self._client).infer(
                FACE_MODEL,
                {"IMAGE": np.asarray(image, dtype=np.uint8)},
                client_timeout=remaining_seconds(30.0),
                headers=trace_headers(),
            )
            TRITON_SECONDS.labels(FACE_MODEL, "infer").observe(time.monotonic() - sent)
        except InferenceServerException as exc:
            raise map_triton_error(exc, "face analysis") from exc
        except grpc.RpcError as exc:
            raise Unavailable(
                f"face analysis: inference server unreachable ({exc.code().name})"
            ) from exc
        boxes = result.as_numpy("BOXES")
        scores = result.as_numpy("SCORES")
        marks = result.as_numpy("LANDMARKS")
        # MESH came with the MediaPipe face model; an older face_landmarks does not have it
        mesh = result.as_numpy("MESH")
        if mesh is not None and mesh.shape[:1] != boxes.shape[:1]:
            mesh = None
        return [
            Face(
                _box(boxes[i]),
                float(scores[i]),
                marks[i],
                None if mesh is None else mesh[i].reshape(MESH_POINTS, 3).astype(np.float32),
            )
            for i in range(len(boxes))
        ]

    async def analyze_audio(self, samples: np.ndarray, options: AnalysisOptions) -> Analysis:
        """One unary call to the audio_analysis model (its config.pbtxt documents the tensors)."""
        inputs = {
            "AUDIO": np.ascontiguousarray(samples, dtype=np.float32).reshape(-1),
            "FPS": np.array([options.fps], dtype=np.float32),
        }
        if options.transcript:
            inputs["TRANSCRIPT"] = np.array([options.transcript.encode()], dtype=np.object_)
        if options.parts:
            inputs["PARTS"] = np.array([",".join(options.parts).encode()], dtype=np.object_)
        try:
            sent = time.monotonic()
            result = await WireClient(self._client).infer(
                ANALYSIS_MODEL,
                inputs,
                client_timeout=remaining_seconds(300.0),
                headers=trace_headers(),
            )
            TRITON_SECONDS.labels(ANALYSIS_MODEL, "infer").observe(time.monotonic() - sent)
        except InferenceServerException as exc:
            raise map_triton_error(exc, "audio analysis") from exc
        except grpc.RpcError as exc:
            raise Unavailable(
                f"audio analysis: inference server unreachable ({exc.code().name})"
            ) from exc
        reply = result.as_numpy("ANALYSIS")
        if reply is None or reply.size != 1:
            raise map_triton_error(ValueError("[INTERNAL] no ANALYSIS output"), "audio analysis")
        return parse_analysis(reply.ravel()[0])

    async def open_avatar(
        self,
        portrait: np.ndarray,
        landmarks: np.ndarray,
        options: AvatarOptions,
        *,
        mesh: np.ndarray | None = None,
        start_frame: int = 0,
    ) -> ModelStream:
        """Start a talking-avatar sequence; with ``start_frame`` (failover), one whose output
        starts at that frame (the audio is sent again from the start). Optional inputs the
        deployed model does not declare are left out with a warning, so a server can run
        against an older model repository (without MESH, the model animates from the 68
        landmarks alone)."""
        first: dict[str, np.ndarray] = {
            "PORTRAIT": np.ascontiguousarray(portrait, dtype=np.uint8),
            "LANDMARKS": np.asarray(landmarks, dtype=np.float32).reshape(68, 2),
            "FPS": np.array([options.fps], dtype=np.float32),
        }
        optional: dict[str, np.ndarray] = {"SEED": np.array([options.seed], dtype=np.uint64)}
        for name, value in (
            ("EXPRESSION_SCALE", options.expression_scale),
            ("HEAD_MOTION_SCALE", options.head_motion_scale),
            ("BLINK_RATE", options.blink_rate),
        ):
            if value is not None:
                optional[name] = np.array([value], dtype=np.float32)
        if mesh is not None:
            optional["MESH"] = np.asarray(mesh, dtype=np.float32).reshape(MESH_POINTS, 3)
        if options.transcript:
            optional["TRANSCRIPT"] = np.array([options.transcript.encode()], dtype=np.object_)
        accepted = await self._input_names(AVATAR_MODEL)
        for name, tensor in optional.items():
            if name in accepted:
                first[name] = tensor
            else:
                log.warning("model %s has no input %s: option ignored", AVATAR_MODEL, name)
        await self._start_at(AVATAR_MODEL, first, start_frame)
        return TritonSequenceStream(
            WireClient(self._client), AVATAR_MODEL, first, start_frame=start_frame
        )

    async def open_lipsync(self, options: LipsyncOptions, *, start_frame: int = 0) -> ModelStream:
        first = {
            "FPS": np.array([options.fps], dtype=np.float32),
            "FACE_INDEX": np.array([options.face_index], dtype=np.int32),
        }
        if options.face_box is not None:
            first["FACE_BOX"] = np.array(options.face_box, dtype=np.float32)
        # Frames as packed I420 where the model takes them (half the bytes, and no colour
        # conversion in the server); an older model gets RGB.
        i420 = {"FRAMES_I420", "COLOUR_MATRIX"} <= await self._input_names(LIPSYNC_MODEL)
        if i420:
            first["COLOUR_MATRIX"] = np.array([options.colour_matrix], dtype=np.int32)
        await self._start_at(LIPSYNC_MODEL, first, start_frame)
        return TritonSequenceStream(
            WireClient(self._client),
            LIPSYNC_MODEL,
            first,
            takes_frames=True,
            start_frame=start_frame,
            takes_i420=i420,
        )

    async def _start_at(self, model: str, first: dict[str, np.ndarray], start_frame: int) -> None:
        """A sequence that starts at a later frame (failover), if the model can (START_FRAME)."""
        if start_frame:
            if "START_FRAME" not in await self._input_names(model):
                raise Unavailable(f"model {model} cannot start at frame {start_frame}")
            first["START_FRAME"] = np.array([start_frame], dtype=np.int64)

    async def lookahead_seconds(self, model: str) -> float:
        """The lookahead ``model`` declares in its config (0 when unknown or not ready)."""
        if model not in self._lookahead:
            try:
                config = (await self._client.get_model_config(model, as_json=True))["config"]
                value = config.get("parameters", {}).get("lookahead_seconds", {})
                self._lookahead[model] = float(value.get("string_value", 0.0))
            except (InferenceServerException, grpc.RpcError, ValueError):
                return 0.0
        return self._lookahead[model]

    async def _input_names(self, model: str) -> set[str]:
        if model not in self._inputs:
            try:
                meta = await self._client.get_model_metadata(model, as_json=True)
            except InferenceServerException as exc:
                raise map_triton_error(exc, "model metadata") from exc
            self._inputs[model] = {i["name"] for i in meta["inputs"]}
        return self._inputs[model]

    async def aclose(self) -> None:
        await self._client.close()


def _box(values: np.ndarray) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in values)
    return x0, y0, x1, y1
