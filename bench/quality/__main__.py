"""``python -m bench.quality``: make the inputs, start a stack, render everything, stop the
stack, measure the outputs (two processes), print the tables."""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from a2v_client import A2VClientError, Client
from devstack.stack import LocalStack

from ..inputs import ROOT, audio_seconds, machine
from ..table import Row
from . import inputs, look, metrics
from .renders import SIZE, render
from .report import ClipRow, clip_table, rows_table

#: seconds of the silent inputs
SILENCE_S = 4.0


@dataclass
class Job:
    """One render and what it is measured against."""

    name: str
    model: str  # talking_avatar | lipsync
    audio: Path
    audio_label: str
    visual_label: str
    image: bytes | None = None
    video: Path | None = None  # lipsync source (its frames are the PSNR reference)
    rest: float = float("nan")  # the visual's own mouth opening at rest
    options: dict = field(default_factory=dict)
    out: Path | None = None
    audio_kind: int = 0
    #: lipsync: frames warped / retrieved from the video / passed through (the Summary's counts)
    mouths: tuple[int, int, int] | None = None
    error: str = ""  # the service refused or failed it: reported, not measured


def main() -> int:
    started = time.monotonic()

    def step(text: str) -> None:
        print(f"[quality {time.monotonic() - started:5.0f} s] {text}", file=sys.stderr, flush=True)

    keep = os.environ.get("BENCH_QUALITY_OUT", "")
    with tempfile.TemporaryDirectory(prefix="a2v-quality-") as tmp:
        d = Path(keep or tmp)
        d.mkdir(parents=True, exist_ok=True)
        step("making inputs (espeak-ng in 5 voices, sox beat track, portraits, still video)")
        voices = [(v.label, inputs.speech(d / f"v{i}.wav", v)) for i, v in enumerate(inputs.VOICES)]
        speaker_speech = inputs.speech(d / "speaker.wav", inputs.SPEAKER)
        beat = inputs.beat_track(d / "beat.wav", 10.0)
        quiet = inputs.silence(d / "silence.wav", SILENCE_S)
        portraits = inputs.portraits()
        hard = inputs.hard_portraits()
        stills = {**portraits, **hard}
        rest = {k: metrics.rest_opening(v) for k, v in stills.items()}
        main_label, *other_labels = portraits
        still_src = d / "still.mp4"
        still_src.write_bytes(inputs.still_video(inputs.load_rgb(inputs.PORTRAIT), SILENCE_S + 1))
        step("making the moving speaker videos (pan, zoom, +-20 deg turn; three faces)")
        moving = {}
        for key, label, rgb in (
            ("move", "portrait.jpg", inputs.load_rgb(inputs.PORTRAIT)),
            ("move-hopper", "grace_hopper.jpg", inputs.grace_hopper()),
            # a smile with teeth: speech opens it further than the source ever does
            ("move-smile", "astronaut (smile, teeth)", inputs.astronaut()),
        ):
            moving[key] = (label, d / f"{key}.mp4")
            moving[key][1].write_bytes(inputs.moving_speaker_video(rgb))
        en_us_label, en_us = voices[0]
        en_us_seconds = audio_seconds(en_us)

        speaker_label = other_labels[-1]  # the other person

        def avatar(name: str, audio: Path, audio_label: str, visual: str, **options) -> Job:
            return Job(
                name, "talking_avatar", audio, audio_label, visual, stills[visual],
                rest=rest[visual], options=options,
            )  # fmt: skip

        def lips(name: str, audio: Path, audio_label: str, visual: str, video=None) -> Job:
            return Job(
                name, "lipsync", audio, audio_label, f"{'still' if video else 'speaker'} video "
                f"of {visual}", video=video, rest=rest[visual], options={"sync_mode": "cut_off"},
            )  # fmt: skip

        jobs = [avatar(f"av-{i}", a, label, main_label) for i, (label, a) in enumerate(voices)]
        jobs += [avatar(f"av-p{i}", en_us, en_us_label, p) for i, p in enumerate(other_labels)]
        sizes = {"9:16": "288x512", "720x720": "720x720"}  # these keep their frame
        for i, label in enumerate(hard):
            size = next((v for k, v in sizes.items() if k in label), None)
            opts = {"resolution": size} if size else {}
            jobs.append(avatar(f"av-h{i}", en_us, en_us_label, label, **opts))
        jobs.append(
            avatar(
                "av-transcript", en_us, f"{en_us_label}, with transcript", main_label,
                transcript=" ".join(inputs.VOICES[0].sentences),
            )
        )  # fmt: skip
        silent = f"{SILENCE_S:g} s silence"
        idle = avatar("av-silence", quiet, silent, main_label)
        still_av = avatar(
            "av-still", quiet, silent, main_label, head_motion_scale=0.0, blink_rate=0.0
        )
        music = avatar("av-beat", beat, f"{inputs.BPM:g} BPM beat track", main_label)
        speakers = [
            avatar("speaker-0", speaker_speech, inputs.SPEAKER.label, main_label),
            avatar("speaker-1", speaker_speech, inputs.SPEAKER.label, speaker_label),
        ]
        lipsync = [lips(f"ls-{i}", a, label, main_label) for i, (label, a) in enumerate(voices)]
        lipsync.append(lips("ls-other", en_us, en_us_label, speaker_label))
        still_ls = lips("ls-still", quiet, silent, main_label, video=still_src)
        turning = [
            Job(
                f"ls-{key}", "lipsync", en_us, en_us_label,
                f"{label} panning, zooming {inputs.ZOOM[0]:g}-{inputs.ZOOM[1]:g}x, turning "
                f"+-{inputs.YAW_DEG:g} deg (warp), {inputs.MOVE_SECONDS:g} s",
                video=path, rest=rest[label], options={"sync_mode": "cut_off"},
            )
            for key, (label, path) in moving.items()
        ]  # fmt: skip

        step("starting Triton and the a2v server")
        with LocalStack(ROOT, log_dir=d) as stack, Client(stack.address, timeout=600) as client:
            step(f"rendering {len(jobs) + 4} talking-avatar clips at {SIZE}")
            for job in [*jobs, idle, still_av, music, *speakers]:
                _run(client, job, d)
            for job in lipsync:
                speaker = speakers[job.name == "ls-other"]
                job.video = speaker.out
                if speaker.error:
                    job.error = f"its speaker video was not rendered ({speaker.error})"
            step(
                f"rendering {len(lipsync) + len(turning) + 1} lipsync clips (on the speaker "
                "videos made above and the moving ones)"
            )
            for job in [*lipsync, *turning, still_ls]:
                _run(client, job, d)
        step("stack stopped; re-detecting landmarks in every output frame (2 processes)")
        files = [j.out for j in [*jobs, idle, still_av, music, *lipsync, *turning, still_ls]]
        files += [speakers[0].out, speakers[1].out, still_src, *(j.video for j in turning)]
        failed = {j.out for j in [*jobs, *speakers, *lipsync, *turning] if j.error}
        files = [f for f in files if f not in failed]
        with ProcessPoolExecutor(2) as pool:
            lms = dict(zip(files, pool.map(metrics.landmarks_of, files), strict=True))
        step("measuring")
        looks = d / "looks" if keep else None
        clip_rows = [_clip_row(job, lms, looks) for job in [*jobs, *lipsync, *turning]]
        rows = _other_rows(idle, still_av, music, still_ls, jobs[0], en_us, lms)
        frames = sum(len(v) for v in lms.values())
        found = sum(int(np.isfinite(v[:, 0, 0]).sum()) for v in lms.values())
        rows.append(
            Row(
                "frames analysed (dlib HOG + 68 points, every frame)",
                f"{frames} ({found} with a face)",
            )
        )
    step("done")
    print()
    print(f"a2v quality benchmark — {machine()}")
    print(
        f"inputs: espeak-ng speech ({', '.join(v.label for v in inputs.VOICES)}; "
        f"{inputs.LEAD:g} s silence, two sentences {inputs.PAUSE:g} s apart, {inputs.TAIL:g} s "
        f"silence; {en_us_seconds:.1f} s for en-us), a sox {inputs.BPM:g} BPM beat track, "
        f"portraits: {', '.join([*portraits, *hard])}; moving speaker videos made from "
        f"{' and '.join(label for label, _ in moving.values())} (the turn is a perspective "
        f"warp of the face region, an approximation of a head yaw); every clip {SIZE} at 25 "
        f"fps (the 9:16 still at 288x512, the small face at 720x720); lipsync on speaker "
        f"videos rendered by talking_avatar from other speech ({inputs.SPEAKER.label}), "
        f"sync_mode cut_off; total {time.monotonic() - started:.0f} s"
    )
    print()
    print(clip_table(clip_rows))
    print()
    print(rows_table(rows))
    if keep:
        print()
        print(f"mouth contact sheets: {d / 'looks'}/<clip>.mouth.png")
    return 0


def _run(client: Client, job: Job, d: Path) -> None:
    """Render one job; a refusal or failure of the service is kept in ``job.error`` (the
    table reports it) instead of ending the benchmark."""
    job.out = d / f"{job.name}.mp4"
    if job.error:
        return
    video = job.video.read_bytes() if job.video is not None else None
    try:
        summary = render(client, job.audio, job.out, image=job.image, video=video, **job.options)
    except A2VClientError as e:
        job.error = str(e).splitlines()[0]
        print(f"  {job.name} ({job.visual_label}): {job.error}", file=sys.stderr, flush=True)
        return
    job.audio_kind = summary.audio_kind
    if summary.HasField("mouth_sources"):  # lipsync (a server that reports it)
        m = summary.mouth_sources
        job.mouths = (m.warped, m.retrieved, m.passed_through)


def _clip_row(job: Job, lms: dict, looks: Path | None = None) -> ClipRow:
    if job.error:
        return ClipRow(job.model, job.audio_label, job.visual_label, error=job.error)
    decoded = metrics.decode(job.out)
    marks = lms[job.out]
    opening = metrics.mouth_opening(marks)
    env = metrics.envelope_db(decoded)
    lin = 10 ** (env / 20)
    sync = metrics.sync(opening, lin)
    sync_db = metrics.sync(opening, env)
    mouth = metrics.openings(opening, env)
    psnr = sharp = None
    src = None
    if job.video is not None:
        src = metrics.decode(job.video, audio=False)
        n = min(len(src.frames), len(decoded.frames))
        psnr = metrics.psnr_outside_face(decoded.frames[:n], src.frames[:n], lms[job.video])
        sharp = metrics.lower_face_sharpness(
            decoded.frames[:n], src.frames[:n], lms[job.video], marks
        )
    folds = metrics.glitches(marks)
    if looks is not None:
        looks.mkdir(parents=True, exist_ok=True)
        sheet = look.mouth_sheet(
            decoded.frames, marks, src_frames=src.frames if src else None, fps=decoded.fps,
            flagged=folds.frames,
        )  # fmt: skip
        cv2.imwrite(str(looks / f"{job.name}.mouth.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return ClipRow(
        model=job.model,
        audio=job.audio_label,
        visual=job.visual_label,
        frames=len(marks),
        faces=int(np.isfinite(marks[:, 0, 0]).sum()),
        sync=sync,
        sync_db=sync_db,
        mouth=mouth,
        rest=job.rest,
        psnr=psnr,
        sharpness=sharp,
        glitches=folds,
        mouths=job.mouths,
    )


def _f(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _other_rows(idle, still_av, music, still_ls, first, first_audio, lms) -> list[Row]:
    rows = []
    src = lms[still_ls.video]
    floor = [metrics.jitter(src, pts) for pts in (metrics.NON_MOUTH, metrics.JAW, metrics.MOUTH)]
    for job, what in (
        (still_ls, "lipsync, still video of portrait.jpg + silence"),
        (still_av, "talking_avatar, head_motion_scale 0, blink_rate 0, silence"),
    ):
        j, jaw, mouth = (
            metrics.jitter(lms[job.out], pts)
            for pts in (metrics.NON_MOUTH, metrics.JAW, metrics.MOUTH)
        )
        rows.append(
            Row(
                f"landmark jitter on a still head: {what} ({j.frames} frames)",
                f"brows, nose, eyes: std {_f(j.std_px)} px, frame-to-frame {_f(j.step_px)} px; "
                f"jaw: std {_f(jaw.std_px)} px; mouth: std {_f(mouth.std_px)} px",
                "measurement floor (same detector on the still source video): std "
                + " / ".join(_f(f.std_px) for f in floor)
                + " px (brows-nose-eyes / jaw / mouth)",
                "std <= 0.5 px (no visible jitter)",
            )
        )
    j = metrics.jitter(lms[idle.out])
    o = metrics.mouth_opening(lms[idle.out])
    rows.append(
        Row(
            f"talking_avatar idle in {SILENCE_S:g} s silence, default options",
            f"mouth opening mean {_f(np.nanmean(o), 3)}, max {_f(np.nanmax(o), 3)}; "
            f"head motion (non-mouth std) {_f(j.std_px)} px",
            f"the portrait's own opening {_f(idle.rest, 3)}",
            "mouth at rest (= portrait); subtle motion",
        )
    )
    # music
    decoded = metrics.decode(music.out)
    marks = lms[music.out]
    shift = metrics.face_shift(decoded.frames, marks)
    motion = metrics.frame_motion(decoded.frames, metrics.keyframes(music.out))
    aim = f"autocorrelation at the beat period >= 0.5; tempo {inputs.BPM:g} BPM"
    aim_sway = f"tempo {inputs.BPM / 2:g} BPM (a sway over two beats) or {inputs.BPM:g}"
    aim_energy = f"tempo {2 * inputs.BPM:g} BPM (a nod has two speed peaks per beat)"
    for signal, what, detrend, unit, target in (
        (shift[:, 1], "head vertical shift (face-region phase correlation)", True, "px", aim),
        (shift[:, 0], "head horizontal shift (sway)", True, "px", aim_sway),
        (
            motion,
            "frame-difference energy (64x64 grey, keyframes left out)",
            False,
            "grey levels",
            aim_energy,
        ),
    ):
        bf = metrics.beat_follow(signal, decoded.times, inputs.BPM, detrend=detrend)
        rows.append(
            Row(
                f"music ({inputs.BPM:g} BPM, {len(decoded.frames)} frames, first 2 s left "
                f"out): {what}",
                f"autocorrelation at the beat period {_f(bf.autocorr_beat)} (at half of it "
                f"{_f(bf.autocorr_half)}); dominant tempo {_f(bf.tempo_bpm, 1)} BPM",
                f"beat-folded profile: range {_f(bf.profile_range)} {unit}, maximum at beat "
                f"phase {bf.peak_phase:+.2f}"
                + (" (y down: lowest head on the beat at 0)" if "vertical" in what else ""),
                target,
            )
        )
    o = metrics.mouth_opening(marks)
    rows.append(
        Row(
            "music: mouth opening (no vocals in the track)",
            f"mean {_f(np.nanmean(o), 3)}, p95 {_f(np.nanpercentile(o, 95), 3)}, max "
            f"{_f(np.nanmax(o), 3)}",
            f"the portrait's own opening {_f(music.rest, 3)}; service's audio_kind: "
            f"{_KINDS.get(music.audio_kind, music.audio_kind)} (its own label, for reference)",
            "mouth closed: p95 <= rest + 0.03",
        )
    )
    dec_first = metrics.decode(first.out)
    rows.append(
        Row(
            "output audio track vs the input audio (talking_avatar, en-us)",
            f"{metrics.audio_offset_ms(first_audio, dec_first):+.0f} ms",
            "envelope cross-correlation at 1 ms resolution",
            "0 ms (+- 1 frame = 40 ms)",
        )
    )
    return rows


_KINDS = {0: "unspecified", 1: "speech", 2: "music", 3: "other"}


if __name__ == "__main__":
    sys.exit(main())
