"""Protobuf <-> domain for everything but the config (``config.py``): input events from
requests, responses from output events, ModelInfo from the catalog."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

from a2v.v1 import audio_to_video_pb2 as pb
from a2v_server import catalog, domain
from a2v_server.errors import FailedPrecondition, InvalidInput
from a2v_server.pipeline import honoured, look
from a2v_server.transport.config import PRESET_ENUM
from a2v_server.transport.parsing import check_parsed

_INPUT_ENUM = {
    catalog.InputKind.AUDIO: pb.INPUT_KIND_AUDIO,
    catalog.InputKind.IMAGE: pb.INPUT_KIND_IMAGE,
    catalog.InputKind.VIDEO: pb.INPUT_KIND_VIDEO,
}


_RAW_FORMATS = {pb.RAW_PIXEL_FORMAT_I420: "i420", pb.RAW_PIXEL_FORMAT_RGB24: "rgb24"}


def _video_piece(video: pb.VideoInput) -> domain.VideoPiece:
    if not video.HasField("frame"):
        return domain.VideoPiece(video.data, video.last)
    if video.data:
        raise InvalidInput(
            "a video message holds file bytes (data) or one uncompressed frame (frame), not "
            "both: send a video file or raw frames",
            field="video",
        )
    f = video.frame
    form = _RAW_FORMATS.get(f.format, "" if f.format == 0 else f"number {f.format}")
    raw = domain.RawFrame(f.data, form, f.width, f.height, f.frame_rate, f.time_us)
    return domain.VideoPiece(b"", video.last, raw)


# --- requests -> input events --------------------------------------------------------------
async def input_events(
    requests: AsyncIterator[pb.GenerateRequest]
    | AsyncIterator[pb.AnalyzeRequest]
    | AsyncIterator[pb.FacesRequest],
) -> AsyncIterator[domain.InputEvent]:
    """The client stream after the config, as domain events (a Generate's, an Analyze's or a
    ListFaces's: their image, video, audio and end messages are the same fields)."""
    async for request in requests:
        check_parsed(request)
        kind = request.WhichOneof("message")
        if kind == "image" and not isinstance(request, pb.AnalyzeRequest):
            yield domain.ImagePiece(request.image.data)
        elif kind == "video" and not isinstance(request, pb.AnalyzeRequest):
            yield _video_piece(request.video)
        elif kind == "audio" and not isinstance(request, pb.FacesRequest):
            payload = request.audio.WhichOneof("payload")
            if payload == "encoded":
                yield domain.EncodedAudioPiece(request.audio.encoded)
            elif payload == "pcm":
                pcm = request.audio.pcm
                yield domain.PcmAudioPiece(pcm.data, pcm.sample_rate, pcm.channels)
            else:
                raise InvalidInput("an audio message must hold encoded bytes or pcm", field="audio")
        elif kind == "end":
            yield domain.EndOfInput()
        elif kind == "config":
            raise FailedPrecondition(
                "a second config message: send the config once, first", field="config"
            )
        else:
            raise InvalidInput("an empty GenerateRequest: set one of its fields", field="message")


# --- output events -> responses ------------------------------------------------------------
def event_to_proto(event: domain.OutputEvent, resume_token: str = "") -> pb.GenerateResponse:
    if isinstance(event, domain.Chunk):
        seg = event.segment
        return pb.GenerateResponse(
            chunk=pb.MediaChunk(
                sequence_number=event.sequence_number,
                kind=pb.CHUNK_KIND_INIT if seg.kind == "init" else pb.CHUNK_KIND_FRAGMENT,
                start_seconds=seg.start_seconds,
                end_seconds=seg.end_seconds,
                data=seg.data,
                crc32=zlib.crc32(seg.data),
                report=None if event.report is None else _report(event.report),
            )
        )
    if isinstance(event, domain.Timeline):
        return pb.GenerateResponse(
            timeline=pb.Timeline(
                frames=map(_timeline_frame, event.frames),
                beat_grid=None if event.beat_grid is None else _beat_grid(event.beat_grid),
            )
        )
    if isinstance(event, domain.Progress):
        return pb.GenerateResponse(
            progress=pb.Progress(
                frames_done=event.frames_done,
                frames_total=event.frames_total,
                audio_seconds=event.audio_seconds,
            )
        )
    if isinstance(event, domain.Accepted):
        x0, y0, x1, y1 = event.face_box
        return pb.GenerateResponse(
            accepted=pb.Accepted(
                request_id=event.request_id,
                model=event.model,
                width=event.width,
                height=event.height,
                fps=event.fps,
                seed=event.seed,
                mime_type=event.mime_type,
                unused_prompt_words=list(event.unused_prompt_words),
                face_box=pb.Box(x0=x0, y0=y0, x1=x1, y1=y1),
                resume_token=resume_token,
                ignored_settings=list(event.ignored_settings),
                warnings=list(event.warnings),
                faces=[detected_face(f) for f in event.faces],
                range=None
                if event.render_range is None
                else pb.TimeRange(
                    start_seconds=event.render_range[0], end_seconds=event.render_range[1]
                ),
            )
        )
    t = event.timings
    return pb.GenerateResponse(
        summary=pb.Summary(
            frames=event.frames,
            duration_seconds=event.duration_seconds,
            bytes=event.bytes,
            chunks=event.chunks,
            timings=pb.Timings(
                total_seconds=t.total,
                first_chunk_seconds=t.first_chunk,
                decode_seconds=t.decode,
                inference_seconds=t.inference,
                encode_seconds=t.encode,
            ),
            audio_kind=event.audio_kind,  # type: ignore[arg-type]  # a model's AudioKind number
            mouth_sources=None
            if event.mouth_sources is None
            else pb.MouthSources(
                passed_through=event.mouth_sources.passed_through,
                warped=event.mouth_sources.warped,
                retrieved=event.mouth_sources.retrieved,
            ),
            warnings=list(event.warnings),
        )
    )


def _report(r: domain.FragmentReport) -> pb.FragmentReport:
    return pb.FragmentReport(
        frames=r.frames,
        face_share=r.face_share,
        tracking_confidence=r.tracking_confidence,
        sync_agreement=r.sync_agreement,
        face_lost=r.face_lost,
        cut=r.cut,
        looped=r.looped,
    )


def _timeline_frame(f: domain.TimelineFrame) -> pb.TimelineFrame:
    return pb.TimelineFrame(
        index=f.index,
        time_seconds=f.time_seconds,
        mouth_open=f.mouth_open,
        viseme=f.viseme,  # type: ignore[arg-type]  # a model's Viseme number
        head_yaw=f.head_pose[0],
        head_pitch=f.head_pose[1],
        head_roll=f.head_pose[2],
        blink=f.blink,
    )


def analysis_to_proto(result: domain.Analysis, request_id: str, seconds: float) -> pb.AudioAnalysis:
    return pb.AudioAnalysis(
        request_id=request_id,
        duration_seconds=result.duration_seconds,
        kind=result.kind,  # type: ignore[arg-type]  # an AudioKind number
        segments=[
            pb.KindSegment(start_seconds=s.start, end_seconds=s.end, kind=s.label)  # type: ignore[arg-type]
            for s in result.segments
        ],
        voiced=[pb.TimeRange(start_seconds=a, end_seconds=b) for a, b in result.voiced],
        phones=[
            pb.PhoneSpan(phone=str(p.label), start_seconds=p.start, end_seconds=p.end)
            for p in result.phones
        ],
        visemes=[
            pb.VisemeSpan(viseme=v.label, start_seconds=v.start, end_seconds=v.end)  # type: ignore[arg-type]
            for v in result.visemes
        ],
        aligned=result.aligned,
        jaw_fps=result.jaw_fps,
        jaw_open=result.jaw_open,
        beat_grid=_beat_grid(result.beat_grid),
        onsets=result.onsets,
        analysis_seconds=seconds,
    )


def detected_face(f: domain.DetectedFace) -> pb.DetectedFace:
    x0, y0, x1, y1 = f.box
    return pb.DetectedFace(
        index=f.index,
        box=pb.Box(x0=x0, y0=y0, x1=x1, y1=y1),
        score=f.score,
        first_seconds=f.first_seconds,
        last_seconds=f.last_seconds,
        visible_seconds=f.visible_seconds,
    )


def _beat_grid(grid: domain.BeatGrid) -> pb.BeatGrid:
    return pb.BeatGrid(
        tempo_bpm=grid.tempo_bpm,
        beats=grid.beats,
        downbeats=grid.downbeats,
        beats_per_bar=grid.beats_per_bar,
        confidence=grid.confidence,
    )


def model_info(
    model: catalog.OfferedModel, *, ready: bool, lookahead_seconds: float
) -> pb.ModelInfo:
    return pb.ModelInfo(
        name=model.name,
        description=model.description,
        accepted_inputs=[_INPUT_ENUM[k] for k in model.inputs],
        native_fps=model.native_fps,
        # every model renders at the visual input's own size too
        resolutions=[PRESET_ENUM[p] for p in model.presets] + [pb.RESOLUTION_PRESET_SOURCE],
        accepts_prompt=model.accepts_prompt,
        ready=ready,
        lookahead_seconds=lookahead_seconds,
        prompt_effects=[
            pb.PromptEffect(kind=kind, effect=effect, phrases=phrases)
            for kind, effect, phrases in (
                look.prompt_effects(look.prompt_kinds(model)) if model.accepts_prompt else []
            )
        ],
        settings=honoured.settings_used(model),
    )
