"""The quality benchmark's bookkeeping, no stack: what it keeps from a clip's Summary and how
its clip table shows it (the lipsync mouth paths column)."""

from __future__ import annotations

from pathlib import Path

from a2v.v1 import audio_to_video_pb2 as pb
from bench.quality import __main__ as quality
from bench.quality.metrics import Glitches, Openings, Sync
from bench.quality.report import ClipRow, clip_table


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_lipsync_mouth_paths_go_from_the_summary_to_the_clip_table(monkeypatch, tmp_path):
    summaries = {
        "ls-0": pb.Summary(
            frames=100,
            mouth_sources=pb.MouthSources(passed_through=7, warped=60, retrieved=33),
        ),
        "av-0": pb.Summary(frames=100),  # talking_avatar: unset
    }
    monkeypatch.setattr(quality, "render", lambda client, audio, out, **_: summaries[out.stem])
    jobs = {
        name: quality.Job(name, model, Path("a.wav"), "audio", "visual")
        for name, model in (("ls-0", "lipsync"), ("av-0", "talking_avatar"))
    }
    for job in jobs.values():
        quality._run(None, job, tmp_path)  # type: ignore[arg-type]  # render is replaced
    assert jobs["ls-0"].mouths == (60, 33, 7)
    assert jobs["av-0"].mouths is None

    measured = dict(
        frames=100,
        faces=100,
        sync=Sync(0, 0.8, 0.8),
        sync_db=Sync(0, 0.7, 0.7),
        mouth=Openings(0.3, 0.1, 0.12, 50, 50),
        glitches=Glitches(0, [], 0.01),
    )
    rows = [
        ClipRow("lipsync", "en-us", "speaker video", mouths=jobs["ls-0"].mouths, **measured),
        ClipRow("talking_avatar", "en-us", "portrait.jpg", mouths=jobs["av-0"].mouths, **measured),
        ClipRow("lipsync", "en-us", "moving video", error="refused"),
    ]
    header, _, aim, lipsync, avatar, failed = clip_table(rows).splitlines()
    width = len(_cells(header))
    assert all(len(_cells(line)) == width for line in (aim, lipsync, avatar, failed))
    assert _cells(header)[-1] == "mouth paths (lipsync): warp / retrieved / no face"
    assert _cells(lipsync)[-1] == "60 / 33 / 7"
    assert _cells(avatar)[-1] == ""
