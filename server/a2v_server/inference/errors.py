"""Triton's errors as domain errors."""

from __future__ import annotations

import re

from tritonclient.utils import InferenceServerException

from a2v_server.errors import A2VError, DeadlineExceeded, InvalidInput, ModelFault, Unavailable

#: the models tag the errors they send: "[INVALID_ARGUMENT] what to fix" for a request the
#: caller must change, "[INTERNAL] ..." for their own failures
_TAG = re.compile(r"\[(INVALID_ARGUMENT|INTERNAL)\]\s*(.*)", re.S)


def map_triton_error(exc: Exception, what: str) -> A2VError:
    """The domain error for a failed Triton call; ``what`` names the step for the message."""
    text = exc.message() if isinstance(exc, InferenceServerException) else str(exc)
    text = text or repr(exc)
    match = _TAG.search(text)
    if match:
        code, msg = match.groups()
        if code == "INVALID_ARGUMENT":
            return InvalidInput(msg)
        return ModelFault(f"{what} failed in the model: {msg}")
    if "DEADLINE_EXCEEDED" in text or "Deadline Exceeded" in text:
        return DeadlineExceeded(f"{what}: the call's deadline passed; allow more time")
    return Unavailable(f"{what}: the inference server did not answer ({text.strip()[:300]})")
