"""Request parsing that never answers INTERNAL: malformed bytes reach the handler as
``Unparsable`` and become INVALID_ARGUMENT there (grpc would answer them itself, with INTERNAL,
before any of our code ran)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError

from a2v_server.errors import InvalidInput


class Unparsable:
    """A request message that protobuf could not parse (e.g. a string that is not UTF-8)."""

    def __init__(self, kind: str, error: Exception) -> None:
        self.message = (
            f"a {kind} message could not be parsed ({error}): string fields must be valid "
            "UTF-8 and the bytes valid protobuf; use the a2v.v1 contract"
        )


def lenient(message_class: Any) -> Callable[[bytes], Any]:
    """A request deserializer that hands undecodable bytes on as ``Unparsable``."""

    def parse(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except DecodeError as exc:
            return Unparsable(message_class.DESCRIPTOR.name, exc)

    return parse


def check_parsed(request: object) -> None:
    if isinstance(request, Unparsable):
        raise InvalidInput(request.message, field="message")
