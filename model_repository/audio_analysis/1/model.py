"""Triton python-backend model: what the models hear in a clip, without rendering.

Unary and stateless (see config.pbtxt): one request carries the whole clip, one response the
analysis (analysis.py) as a UTF-8 JSON string. Tensors:
  AUDIO       fp32   [n]  the whole clip: mono 16 kHz samples in [-1, 1]
  FPS         fp32   [1]  optional: rate of the jaw curve, 1..60 (default 25)
  TRANSCRIPT  string [1]  optional: English text of the speech (phones are then aligned to it)
  PARTS       string [1]  optional: comma-separated subset of kind,voice,phones,jaw,beats
  ANALYSIS    string [1]  response: the analysis, JSON

Bad input gets an error response whose message starts with "[INVALID_ARGUMENT] ", a failure
"[INTERNAL] analysis failed: ..."; the a2v server maps the tag to its gRPC status.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import triton_python_backend_utils as pb_utils
from analysis import MAX_TRANSCRIPT, analyze, parse_parts
from shared import SAMPLE_RATE, InvalidRequest, input_array

log = logging.getLogger("audio_analysis")


def _string(request, name: str) -> str | None:
    value = input_array(request, name)
    if value is None or value.size == 0:
        return None
    raw = value.ravel()[0]
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def parse(request) -> dict:
    """The request's inputs as analyze()'s arguments (checked there too)."""
    audio = input_array(request, "AUDIO")
    if audio is None:
        raise InvalidRequest("AUDIO is missing")
    fps_in = input_array(request, "FPS")
    fps = 25.0 if fps_in is None or fps_in.size == 0 else float(fps_in.ravel()[0])
    transcript = _string(request, "TRANSCRIPT")
    if transcript is not None and len(transcript) > MAX_TRANSCRIPT:
        raise InvalidRequest(f"TRANSCRIPT is longer than {MAX_TRANSCRIPT} characters")
    return dict(
        samples=audio.astype(np.float32, copy=False).ravel(),
        fps=fps,
        transcript=transcript,
        parts=parse_parts(_string(request, "PARTS")),
    )


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        # Pay the one-time setup (the VAD's ONNX session, PocketSphinx's decoders) now.
        rng = np.random.default_rng(0)
        analyze(0.1 * rng.standard_normal(SAMPLE_RATE).astype(np.float32))

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            try:
                result = analyze(**parse(request))
                text = json.dumps(result, separators=(",", ":")).encode()
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[pb_utils.Tensor("ANALYSIS", np.array([text], dtype=object))]
                    )
                )
            except InvalidRequest as exc:
                responses.append(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"[INVALID_ARGUMENT] {exc}")
                    )
                )
            except Exception as exc:  # a bug: keep the instance alive, fail this request
                log.exception("analysis failed")
                responses.append(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"[INTERNAL] analysis failed: {exc}")
                    )
                )
        return responses
