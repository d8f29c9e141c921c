"""Triton's own view: per-model request statistics from its statistics endpoint.

Two snapshots (before and after the benchmark runs) are subtracted, so the figures cover this
benchmark only. For the decoupled ``talking_avatar`` model one request is one ~100 ms piece of
audio and its answer is several responses (5 frames each); ``compute_infer`` is the time in the
model's ``execute`` for that request (rendering and sending every frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import tritonclient.grpc as grpcclient

MODELS = ("face_landmarks", "talking_avatar")
_PHASES = ("queue", "compute_input", "compute_infer", "compute_output")


def snapshot(url: str) -> dict[str, dict[str, tuple[int, int]]]:
    """model -> phase -> (count, total ns); phases: success, queue, compute_*."""
    client = grpcclient.InferenceServerClient(url)
    try:
        out: dict[str, dict[str, tuple[int, int]]] = {}
        for model in MODELS:
            stats = client.get_inference_statistics(model, as_json=True)
            phases: dict[str, tuple[int, int]] = {}
            for entry in stats.get("model_stats", []):
                inference = entry.get("inference_stats", {})
                for phase in ("success", *_PHASES):
                    item = inference.get(phase, {})
                    old = phases.get(phase, (0, 0))
                    phases[phase] = (
                        old[0] + int(item.get("count", 0)),
                        old[1] + int(item.get("ns", 0)),
                    )
            out[model] = phases
        return out
    finally:
        client.close()


@dataclass
class ModelStats:
    model: str
    requests: int
    mean_ms: dict[str, float]  # phase -> mean milliseconds per request


def delta(before: dict, after: dict) -> list[ModelStats]:
    result = []
    for model in MODELS:
        b, a = before.get(model, {}), after.get(model, {})
        means = {}
        requests = a.get("success", (0, 0))[0] - b.get("success", (0, 0))[0]
        for phase in ("success", *_PHASES):
            count = a.get(phase, (0, 0))[0] - b.get(phase, (0, 0))[0]
            ns = a.get(phase, (0, 0))[1] - b.get(phase, (0, 0))[1]
            means[phase] = ns / count / 1e6 if count else 0.0
        result.append(ModelStats(model, requests, means))
    return result
