"""Server settings: one frozen object, read from the environment, overridden by CLI flags."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told. Environment variable = ``A2V_`` + field name upper."""

    #: host:port the gRPC server listens on; plaintext, so loopback by default
    listen: str = "127.0.0.1:50051"
    #: Triton gRPC endpoints, comma-separated host:port, or dns:name:port for every address a
    #: name has (a headless Service), re-resolved; new generations go to the healthy one with
    #: the fewest open sequences (inference/pool.py). launch_triton starts one here.
    triton_url: str = "127.0.0.1:8001"
    #: start a local Triton process from the model environment, and stop it on exit
    launch_triton: bool = False
    #: model environment holding tritonserver and the model's packages (relative to the cwd)
    triton_env: str = ".venv-triton"
    model_repository: str = "model_repository"
    #: instance kind for the launched Triton's models: "cpu", "gpu", or "" (as in config.pbtxt)
    triton_instance_kind: str = ""
    #: instances per model for the launched Triton (0 = as in config.pbtxt)
    triton_instance_count: int = 0
    #: largest gRPC message accepted; inputs larger than this are split by the client
    max_message_bytes: int = 8 * MIB
    max_image_bytes: int = 20 * MIB
    max_image_pixels: int = 40_000_000
    max_audio_bytes: int = 200 * MIB
    max_audio_seconds: float = 600.0
    #: lipsync speaker videos (spooled to a temporary file, not held in memory; the upload is
    #: a generation's only temporary disk: decoded frames are never stored)
    max_video_bytes: int = 500 * MIB
    #: a speaker video sent as uncompressed frames is stored as it comes: 4 GiB holds 100 s of
    #: 720p I420 at 30 fps (size it against the pod's ephemeral storage)
    max_raw_video_bytes: int = 4096 * MIB
    #: output pixels per second of video a generation may render (width x height x fps):
    #: 1920x1080 at 60 fps; 4K output is refused up front
    max_output_pixel_rate: int = 1920 * 1080 * 60
    #: the server waits this long for the config, the visual input and each next message
    idle_timeout_seconds: float = 30.0
    #: after the first idle_timeout_seconds, an image or video upload must average at least
    #: this rate (a trickle of a byte now and then must not hold a stream slot)
    min_upload_bytes_per_second: int = 64 * 1024
    #: input messages per second a stream may send (a burst of as many is allowed)
    max_messages_per_second: float = 500.0
    #: a stream whose audio falls this far behind real time (a live source that cannot keep
    #: up, or a trickling upload) is ended with DEADLINE_EXCEEDED
    max_audio_lag_seconds: float = 20.0
    shutdown_grace_seconds: float = 10.0
    #: a generation whose client vanished keeps rendering this long, waiting for a Resume
    resume_detach_seconds: float = 15.0
    #: a finished session (and its last chunks) can be resumed for this long
    resume_retention_seconds: float = 60.0
    #: file holding the key that signs resume tokens, the same on every replica (a Kubernetes
    #: Secret): then Resume and Cancel work on any replica. "" = a random key per process:
    #: tokens work only on the replica that issued them
    resume_key_file: str = ""
    #: host:port at which the other replicas reach this one (in Kubernetes: the pod IP and the
    #: port, from the downward API); "" = the listen address when it names one host, else
    #: this host's name resolved, with the listen port (a container's own address)
    advertise_address: str = ""
    #: PEM CA bundle that signed the other replicas' certificates (with TLS; "" = system roots)
    peer_tls_ca_file: str = ""
    health_interval_seconds: float = 1.0
    log_level: str = "INFO"
    #: "text" (human-readable) or "json" (one object per line, with trace and request ids)
    log_format: str = "text"
    #: host:port of the Prometheus /metrics endpoint; "" turns it off
    metrics_listen: str = "127.0.0.1:9464"
    #: OTLP/HTTP traces endpoint for the launched Triton's own OpenTelemetry tracing
    #: (e.g. http://otel-collector:4318/v1/traces); "" = Triton does not trace
    triton_trace_url: str = ""
    #: Triton samples one request in this many when tracing (1 = every request)
    triton_trace_rate: int = 1
    #: PEM server certificate and key: TLS on the gRPC port when set
    tls_cert_file: str = ""
    tls_key_file: str = ""
    #: PEM CA bundle for client certificates: when set, clients must present one (mutual TLS)
    tls_client_ca_file: str = ""
    #: allow plaintext on a non-loopback address (a proxy or mesh encrypts the traffic)
    allow_insecure: bool = False
    #: file with one API key per line; when set every call but health needs one
    api_keys_file: str = ""
    #: concurrent Generate streams per API key (all callers share one bucket without keys)
    max_streams_per_key: int = 4

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get("A2V_" + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(f.name, raw, type(getattr(cls, f.name)))
        return cls(**values).validated()

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (None values are ignored), validated."""
        return dataclasses.replace(
            self, **{k: v for k, v in changes.items() if v is not None}
        ).validated()

    def validated(self) -> Settings:
        for name in (
            "max_message_bytes",
            "max_image_bytes",
            "max_image_pixels",
            "max_audio_bytes",
            "max_video_bytes",
            "max_raw_video_bytes",
            "max_output_pixel_rate",
            "min_upload_bytes_per_second",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_message_bytes < 64 * 1024:
            raise ValueError("max_message_bytes must be at least 64 KiB")
        if self.max_audio_seconds <= 0 or self.idle_timeout_seconds <= 0:
            raise ValueError("max_audio_seconds and idle_timeout_seconds must be positive")
        if self.triton_instance_kind not in ("", "cpu", "gpu"):
            raise ValueError("triton_instance_kind must be cpu, gpu or empty")
        if ":" not in self.listen:
            raise ValueError("listen must be host:port")
        endpoints = triton_endpoints(self.triton_url)
        if self.launch_triton and (len(endpoints) > 1 or endpoints[0].startswith("dns:")):
            raise ValueError("launch_triton starts one Triton: give triton_url as one host:port")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file go together: set both or neither")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ValueError("tls_client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file")
        if not self.tls_cert_file and not self.allow_insecure and not is_loopback(self.listen):
            raise ValueError(
                f"refusing to listen on {self.listen} without TLS: set A2V_TLS_CERT_FILE and "
                "A2V_TLS_KEY_FILE, listen on loopback, or set A2V_ALLOW_INSECURE=true when a "
                "proxy or service mesh encrypts the traffic"
            )
        if self.advertise_address and ":" not in self.advertise_address:
            raise ValueError("advertise_address must be host:port (how other replicas reach it)")
        if self.max_streams_per_key < 1:
            raise ValueError("max_streams_per_key must be at least 1")
        if self.log_format not in ("text", "json"):
            raise ValueError("log_format must be text or json")
        if self.metrics_listen and ":" not in self.metrics_listen:
            raise ValueError("metrics_listen must be host:port, or empty to turn metrics off")
        if self.triton_trace_rate < 1:
            raise ValueError("triton_trace_rate must be at least 1")
        return self

    def describe(self) -> str:
        """One line for the start-up log (no secrets are held here)."""
        return " ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))


def triton_endpoints(spec: str) -> list[str]:
    """The entries of ``triton_url``: ``host:port``, or ``dns:name:port`` (a name re-resolved
    for every address it has), comma-separated; checked."""
    entries = [e.strip() for e in spec.split(",") if e.strip()]
    if not entries:
        raise ValueError("triton_url must name at least one host:port")
    for entry in entries:
        host, sep, port = entry.removeprefix("dns:").rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"triton_url entry {entry!r} must be host:port or dns:name:port")
    return entries


def is_loopback(address: str) -> bool:
    """True when ``host:port`` names a loopback host (127.0.0.0/8, ::1, localhost)."""
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost, or empty (= every interface)
        return False


def _parse(name: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        return kind(raw)
    except ValueError:
        raise ValueError(f"A2V_{name.upper()}={raw!r} is not a valid {kind.__name__}") from None
