"""``python -m bench``: start a stack, run every measurement, print the table, stop the stack."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2

from devstack.stack import LocalStack

from . import editing, models, suite, triton_stats
from .inputs import (
    PORTRAIT,
    ROOT,
    SPEECH,
    audio_seconds,
    cutaway_video,
    drum_loop,
    group_picture,
    group_video,
    hlg_video,
    machine,
    phone_video,
    prores_video,
    repeated,
    speaker_video,
    speech,
)
from .table import Row, markdown


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        sys.exit(f"bench: {name} must be an integer")


def main() -> int:
    runs = _env_int("BENCH_RUNS", 10)
    max_streams = _env_int("BENCH_MAX_STREAMS", 6)
    long_run = os.environ.get("BENCH_LONG", "") not in ("", "0")
    #: override the models' instance count (0 = as in config.pbtxt), to compare settings
    instances = _env_int("BENCH_INSTANCES", 0)
    started = time.monotonic()
    image = PORTRAIT.read_bytes()

    def step(text: str) -> None:
        print(f"[bench {time.monotonic() - started:5.0f} s] {text}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="a2v-bench-") as tmp:
        tmp_dir = Path(tmp)
        step("making inputs (espeak-ng, sox, speaker videos)")
        ten = speech(tmp_dir / "speech-10s.wav", 10.0)
        eight = speech(tmp_dir / "speech-8s.wav", 8.0)
        long_input = speech(tmp_dir / "speech-10min.wav", 600.0) if long_run else None
        minute = speech(tmp_dir / "speech-60s.wav", 60.0)
        drum_loop(loop := tmp_dir / "drums-126bpm-60s.wav", seconds=60.0, bpm=126.0)
        speakers = [
            speaker_video(tmp_dir / f"speaker-{w}x{h}.mp4", w, h)
            for w, h in ((512, 512), (1280, 720), (1920, 1080))
        ]
        cutaway = cutaway_video(speakers[1], tmp_dir / "cutaway-1280x720.mp4")
        phone = phone_video(tmp_dir / "phone-3840x2160.mp4")
        prores = prores_video(speakers[2], tmp_dir / "speaker-1920x1080-prores.mov")
        # a phone's 1080p HDR clip: the 4K clip's grain (a phone's bit rate), 10 s, HLG
        grainy = phone_video(tmp_dir / "phone-1920x1080.mp4", 1920, 1080, seconds=10.0)
        hlg = hlg_video(grainy, tmp_dir / "phone-1920x1080-hlg.mp4")
        group = cv2.imencode(".png", cv2.cvtColor(group_picture(), cv2.COLOR_RGB2BGR))[1].tobytes()
        group_video_720p = group_video(tmp_dir / "group-1280x720.mp4", 1280, 720)
        step("starting Triton and the a2v server")
        # The per-caller stream limit is a policy, not capacity: lift it to measure capacity.
        stack = LocalStack(
            ROOT, log_dir=tmp_dir, server_env={"A2V_MAX_STREAMS_PER_KEY": str(max_streams + 1)}
        )
        stack.triton.instance_count = instances
        with stack:
            before = triton_stats.snapshot(stack.triton.url)
            rows: list[Row] = []
            step(f"first chunk, {runs} file uploads")
            rows += suite.first_chunk(stack.address, SPEECH, image, runs)
            rows += suite.first_chunk(stack.address, SPEECH, image, runs, "1920x1080")
            step("real-time factor and encode-only ceiling")
            rows += suite.throughput(stack.address, SPEECH, PORTRAIT, 5)
            lipsync_runs = _env_int("BENCH_LIPSYNC_RUNS", 3)
            step(f"lipsync at 512x512, 720p and 1080p ({lipsync_runs} runs each)")
            rows += suite.lipsync(stack.address, SPEECH, speakers, lipsync_runs)
            step(f"lipsync of a 720p video with a cutaway ({lipsync_runs} runs)")
            rows += suite.lipsync_cutaway(stack.address, SPEECH, cutaway, lipsync_runs)
            step(f"lipsync of a phone's 4K clip ({lipsync_runs} runs)")
            rows += suite.lipsync_4k(stack.address, SPEECH, phone, lipsync_runs)
            step(f"lipsync of a 1080p ProRes 422 10-bit video ({lipsync_runs} runs)")
            rows += suite.lipsync_prores(stack.address, SPEECH, prores, lipsync_runs)
            step(f"lipsync of a phone's 1080p HLG HDR video ({lipsync_runs} runs)")
            rows += suite.lipsync_hdr(stack.address, SPEECH, hlg, lipsync_runs)
            step("live lipsync at 720p")
            rows += suite.live_lipsync(stack.address, SPEECH, speakers[1])
            rows += suite.live_lipsync(stack.address, SPEECH, speakers[1], raw=True)
            step("two lipsync uploads at 720p together")
            rows += suite.lipsync_fairness(stack.address, SPEECH, speakers[1])
            step("editing: Analyze, range re-render")
            rows += editing.analysis(
                stack.address, [("speech", minute), ("drum loop at 126 BPM", loop)]
            )
            rows += editing.ranges(stack.address, SPEECH, image, speakers[1])
            step("editing: two speakers")
            rows += editing.speakers(stack.address, SPEECH, group, group_video_720p)
            step("lipsync memory and temporary disk" + (" (10 min)" if long_run else ""))
            long_speaker = repeated(speakers[2], tmp_dir / "speaker-1920x1080-10min.mp4", 60)
            lipsync_runs_memory = [
                ("1080p, 10 s source", SPEECH, speakers[2]),
                ("1080p, 10 min source, 9.5 s of speech", SPEECH, long_speaker),
            ]
            if long_input is not None:
                lipsync_runs_memory.append(
                    ("1080p, 10 min source, 10 min of speech", long_input, long_speaker)
                )
            rows += suite.lipsync_memory(stack.address, lipsync_runs_memory)
            step("one live stream")
            rows += suite.live(stack.address, ten, image)
            # Triton's statistics for single streams only (queueing under overload is shown
            # by the concurrency row instead).
            after = triton_stats.snapshot(stack.triton.url)
            step("simultaneous live streams")
            rows += suite.concurrency(stack.address, eight, image, max_streams)
            config = json.loads(stack.triton.model_config_json("talking_avatar"))
            uploads = sum(g["count"] for g in config["instance_group"])  # one per instance
            step(f"fairness, {uploads} file uploads together")
            rows += suite.fairness(stack.address, SPEECH, image, uploads)
            step("memory" + (" (10 s and 10 min inputs)" if long_run else " (10 s input)"))
            inputs = [("10 s", ten)] + ([("10 min", long_input)] if long_input else [])
            rows += suite.memory(stack.address, inputs, image, "512x512")
            if not long_run:
                rows.append(
                    Row("peak RSS, 10 min input", "skipped (set BENCH_LONG=1, ~2 more minutes)")
                )
            rows += suite.triton_rows(triton_stats.delta(before, after))
    step("models in-process (no Triton)")
    model_rows = models.rows()
    step("done")
    print()
    print(f"a2v benchmark — {machine()}")
    print(
        f"inputs: {SPEECH.name} ({audio_seconds(SPEECH):.2f} s) for file uploads, espeak-ng "
        f"speech for live streams and memory, portrait {PORTRAIT.name}, 25 fps; "
        f"model instances: {instances or 'as in config.pbtxt'}; "
        f"client and stack on the same machine; total bench time "
        f"{time.monotonic() - started:.0f} s"
    )
    print()
    print(markdown(rows))
    print()
    print(models.caption())
    print()
    print(markdown(model_rows, models.HEADER))
    return 0


if __name__ == "__main__":
    sys.exit(main())
