"""The measurements, each returning table rows. ``bench.__main__`` runs them in order against
one running stack."""

from __future__ import annotations

import asyncio
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av

from a2v_client.client import file_pcm

from . import triton_stats
from .ceiling import encode_only, encode_only_video
from .inputs import index_at_end, video_bitrate
from .procmem import PeakSampler, StackPids
from .runs import LiveRun, file_run, live_run, live_runs
from .table import Row, mib, ms, pct

#: a live stream that is this far behind (worst fragment, or the end) no longer keeps real time
BEHIND_SECONDS = 1.0


def first_chunk(
    address: str, audio: Path, image: bytes, runs: int, size: str = "512x512"
) -> list[Row]:
    """File upload of the avatar at ``size``: config sent -> first media chunk, client and
    server clocks."""
    file_run(address, audio, image, size)  # warm-up (first sequence, caches)
    results = [file_run(address, audio, image, size) for _ in range(runs)]
    client = [r.first_chunk for r in results]
    server = [r.server_first_chunk for r in results]
    return [
        Row(
            f"first media chunk, file upload, avatar {size} ({runs} runs, client clock)",
            f"p50 {ms(pct(client, 50))}, p95 {ms(pct(client, 95))}",
            f"server's own first_chunk_seconds: p50 {ms(pct(server, 50))}, "
            f"p95 {ms(pct(server, 95))}",
            "<= 300 ms" + ("" if size == "512x512" else " (issue 12)"),
        )
    ]


def throughput(address: str, audio: Path, portrait: Path, runs: int) -> list[Row]:
    """Real-time factor and fps of one file upload vs the encode-only ceiling, per size, and
    where the CPU time of one run goes (per process).

    Each service run is paired with a ceiling run right after it, and the ratio is taken per
    pair (median of the pairs): this shared machine's speed drifts by 10-30 % over a minute,
    which moved the ratio of two separately taken medians by as much. One warm-up run per size
    comes first and is not counted (first sight of the portrait by a model instance: see the
    first-chunk row for that cost).
    """
    rows = []
    image = portrait.read_bytes()
    pids = StackPids.find()
    for width, height, target in ((512, 512, 4.0), (1280, 720, 2.0)):
        size = f"{width}x{height}"
        file_run(address, audio, image, size)  # warm-up, not counted
        pairs = []
        cpu = {k: 0.0 for k in pids.cpu_seconds()}
        for _ in range(runs):
            cpu_before = pids.cpu_seconds()
            result = file_run(address, audio, image, size)
            cpu_after = pids.cpu_seconds()
            for k in cpu:
                cpu[k] += (cpu_after[k] - cpu_before[k]) / runs
            pairs.append((result, encode_only(audio, portrait, width, height)))
        ratios = sorted(r.duration / r.total / c.rtf for r, c in pairs)
        ratio = ratios[len(ratios) // 2]
        best = sorted((r for r, _ in pairs), key=lambda r: r.total)[len(pairs) // 2]  # median
        rtf = best.duration / best.total
        fps = best.frames / best.total
        ceiling = sorted((c for _, c in pairs), key=lambda c: c.seconds)[len(pairs) // 2]
        t = best.summary.timings
        rows.append(
            Row(
                f"real-time factor, file upload, {size} (median of {runs})",
                f"{rtf:.1f}x real time, {fps:.0f} fps ({best.duration:.2f} s in "
                f"{best.total:.2f} s; server: decode {t.decode_seconds:.2f} s, inference "
                f"{t.inference_seconds:.2f} s, encode {t.encode_seconds:.2f} s)",
                f"encode-only ceiling {ceiling.rtf:.1f}x (median); per run/ceiling pair: "
                f"median {100 * ratio:.0f}% of ceiling (range {100 * ratios[0]:.0f}-"
                f"{100 * ratios[-1]:.0f}%)",
                f">= {target:g}x, >= 60% of ceiling",
            )
        )
        rows.append(
            Row(
                f"CPU seconds per run, {size} (mean of {runs}; 2 cores = 2 CPU-s per wall s)",
                ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()),
                f"encode-only ceiling: {ceiling.seconds:.2f} s (median, one process); "
                "tritonserver's own share is moving tensors (the model runs in the stubs)",
                "",
            )
        )
    return rows


def _pcm(audio: Path) -> tuple[bytes, int]:
    rate, channels, pieces = file_pcm(audio, 0.02)
    if channels != 1:
        raise RuntimeError(f"{audio}: the live benchmark expects mono input")
    return b"".join(pieces), rate


def lipsync(address: str, audio: Path, videos: list[Path], runs: int) -> list[Row]:
    """Lipsync file uploads (speaker video + speech, the default output size: the video's own)
    against the encode-only ceiling for the same video, per size, paired per run as above."""
    rows = []
    for video, target in zip(videos, (4.0, 2.0, 1.0), strict=False):
        best, ceiling, ratios, firsts, _ = _lipsync_pairs(address, audio, video, runs)
        t = best.summary.timings
        mouths = best.summary.mouth_sources
        rows.append(
            Row(
                f"lipsync, file upload, {video.stem} (median of {runs}; output at the video's "
                "size)",
                f"{best.duration / best.total:.2f}x real time ({best.duration:.2f} s in "
                f"{best.total:.2f} s; first chunk {1000 * firsts[len(firsts) // 2]:.0f} ms; "
                f"server: decode {t.decode_seconds:.2f} s, inference {t.inference_seconds:.2f} "
                f"s, encode {t.encode_seconds:.2f} s; mouths: {mouths.warped} warped, "
                f"{mouths.retrieved} from the video)",
                f"encode-only ceiling {ceiling.rtf:.1f}x; per run/ceiling pair: median "
                f"{100 * ratios[len(ratios) // 2]:.0f}% of ceiling (range "
                f"{100 * ratios[0]:.0f}-{100 * ratios[-1]:.0f}%)",
                f">= {target:g}x, >= 60% of ceiling, first chunk <= 500 ms (issue 12)",
            )
        )
    return rows


def lipsync_cutaway(address: str, audio: Path, video: Path, runs: int) -> list[Row]:
    """The 720p speaker video with a 3 s cutaway (inputs.cutaway_video: no face there) against
    its encode-only ceiling, paired per run as ``lipsync``: frames without a face must cost no
    more than the speaker's (the tracker searches them five times a second, not each one)."""
    best, ceiling, ratios, firsts, _ = _lipsync_pairs(address, audio, video, runs)
    mouths = best.summary.mouth_sources
    return [
        Row(
            f"lipsync, file upload, {video.stem} (a 3 s cutaway without a face; median of {runs})",
            f"{best.duration / best.total:.2f}x real time ({best.duration:.2f} s in "
            f"{best.total:.2f} s; first chunk {1000 * firsts[len(firsts) // 2]:.0f} ms; mouths: "
            f"{mouths.warped} warped, {mouths.passed_through} without a face)",
            f"encode-only ceiling {ceiling.rtf:.1f}x; per pair: median "
            f"{100 * ratios[len(ratios) // 2]:.0f}% of ceiling (range "
            f"{100 * ratios[0]:.0f}-{100 * ratios[-1]:.0f}%)",
            ">= 2x, as the 720p speaker video",
        )
    ]


def _lipsync_pairs(address: str, audio: Path, video: Path, runs: int, scaled: bool = False):
    """After an uncounted warm-up, ``runs`` lipsync uploads of ``video``, each followed by its
    encode-only ceiling (``scaled``: of the video scaled to the run's output size). Returns
    the median run, the median ceiling, the per-pair shares and the first chunks, and the
    first chunks counted from the video's last byte, sorted."""
    file_run(address, audio, None, None, video)  # warm-up, not counted
    pairs = []
    for _ in range(runs):
        run = file_run(address, audio, None, None, video)
        pairs.append((run, encode_only_video(audio, video, run.size if scaled else None)))
    ratios = sorted(r.duration / r.total / c.rtf for r, c in pairs)
    best = sorted((r for r, _ in pairs), key=lambda r: r.total)[len(pairs) // 2]
    ceiling = sorted((c for _, c in pairs), key=lambda c: c.seconds)[len(pairs) // 2]
    firsts = sorted(r.first_chunk for r, _ in pairs)
    return best, ceiling, ratios, firsts, sorted(r.first_chunk - r.video_sent for r, _ in pairs)


def lipsync_4k(address: str, audio: Path, video: Path, runs: int) -> list[Row]:
    """A phone's 4K speaker video (inputs.phone_video), lipsynced at the default output size
    (the source scaled to the pixel budget), against a ceiling that decodes the same video
    scaled to that size and encodes it; paired per run as ``lipsync``."""
    title = f"phone-like clip ({video_bitrate(video) / 1e6:.0f} Mbit/s, grain)"
    target = ">= 1x as 1080p; the first chunk's 500 ms is the target up to 1080p sources"
    return _lipsync_converted(address, audio, video, runs, title, target)


def lipsync_prores(address: str, audio: Path, video: Path, runs: int) -> list[Row]:
    """A 1080p ProRes 422 HQ speaker video (10-bit 4:2:2, its index at the end as cameras
    write it: inputs.prores_video), lipsynced at its own size, converted to 8-bit 4:2:0 as it
    is decoded, against a ceiling that decodes and converts it the same way and encodes it."""
    title = f"ProRes 422 HQ, 10-bit 4:2:2 ({video_bitrate(video) / 1e6:.0f} Mbit/s)"
    return _lipsync_converted(address, audio, video, runs, title, ">= 1x, as 1080p")


def lipsync_hdr(address: str, audio: Path, video: Path, runs: int) -> list[Row]:
    """A phone's 1080p HDR speaker video (HLG, 10-bit HEVC: inputs.hlg_video), lipsynced at
    its own size and made SDR BT.709 as a screen shows it (media/hdr.py), against a ceiling
    that decodes it, converts it to 8-bit 4:2:0 without colour management and encodes it: the
    share left is the HDR-to-SDR conversion and the model."""
    title = f"HLG HDR, 10-bit HEVC ({video_bitrate(video) / 1e6:.1f} Mbit/s, grain)"
    return _lipsync_converted(address, audio, video, runs, title, ">= 1x, as 1080p")


def _lipsync_converted(
    address: str, audio: Path, video: Path, runs: int, title: str, target: str
) -> list[Row]:
    """A lipsync row of a video the ceiling must convert or scale to the run's output (a
    yuv420p picture of the run's size: ``_lipsync_pairs(scaled=True)``)."""
    best, ceiling, ratios, firsts, after = _lipsync_pairs(address, audio, video, runs, scaled=True)
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        source = f"{stream.width}x{stream.height}"
    t = best.summary.timings
    # An MP4 whose index comes after the media decodes nothing before its last byte: issue
    # 12's first chunk counts from there (the upload of the 10 s 1080p ProRes clip itself took
    # 0.3-0.6 s over loopback here). Every other row counts from the config.
    first = f"first chunk {1000 * firsts[len(firsts) // 2]:.0f} ms"
    if index_at_end(video):
        first = (
            f"first chunk {1000 * after[len(after) // 2]:.0f} ms after the video's last byte "
            f"(its index is at the end; {1000 * firsts[len(firsts) // 2]:.0f} ms after the "
            "config)"
        )
    return [
        Row(
            f"lipsync, file upload, {source} {title} -> {best.size[0]}x{best.size[1]} "
            f"(median of {runs})",
            f"{best.duration / best.total:.2f}x real time ({best.duration:.2f} s in "
            f"{best.total:.2f} s; {first}; server: "
            f"decode {t.decode_seconds:.2f} s, inference {t.inference_seconds:.2f} s, encode "
            f"{t.encode_seconds:.2f} s)",
            f"ceiling (decode converted to the output, encode) {ceiling.rtf:.1f}x; per pair: "
            f"median {100 * ratios[len(ratios) // 2]:.0f}% of ceiling (range "
            f"{100 * ratios[0]:.0f}-{100 * ratios[-1]:.0f}%)",
            target,
        )
    ]


def lipsync_memory(address: str, runs: list[tuple[str, Path, Path]]) -> list[Row]:
    """Peak RSS of the server and the Triton tree (and the tree's PSS, which counts the memory
    tritonserver shares with its stubs once), and the server's peak temporary disk, during one
    lipsync upload each (label, speech, speaker video), against the first."""
    pids = StackPids.find()
    rows = []
    first: tuple[str, tuple[int, int, int]] | None = None
    for label, audio, video in runs:
        with PeakSampler(pids) as sampler:
            result = file_run(address, audio, None, None, video)
        peaks = (sampler.server_peak, sampler.triton_peak, sampler.triton_pss_peak)
        versus = ""
        if first is not None:
            versus = (
                f"; vs the {first[0]} run: server {(peaks[0] - first[1][0]) / 2**20:+.0f} MiB, "
                f"Triton {(peaks[1] - first[1][1]) / 2**20:+.0f} MiB "
                f"(PSS {(peaks[2] - first[1][2]) / 2**20:+.0f} MiB)"
            )
        else:
            first = (label, peaks)
        upload = video.stat().st_size
        rows.append(
            Row(
                f"lipsync peak RSS and temporary disk, {label} ({result.duration:.0f} s of "
                f"video rendered in {result.total:.0f} s)",
                f"server {mib(peaks[0])}, Triton {mib(peaks[1])} (PSS {mib(peaks[2])}); "
                f"temporary disk {mib(sampler.temp_peak)} for an upload of {mib(upload)}",
                f"idle before: server {mib(sampler.server_idle)}, Triton "
                f"{mib(sampler.triton_idle)} (PSS {mib(sampler.triton_pss_idle)}){versus}",
                "temporary disk <= the upload"
                + ("" if first[0] == label else f"; RSS <= the {first[0]} run + 100 MB"),
            )
        )
    return rows


def live(address: str, audio: Path, image: bytes) -> list[Row]:
    """One live stream at 512x512: latency per fragment, fragment durations."""
    pcm, rate = _pcm(audio)
    run = asyncio.run(live_run(address, pcm, rate, image, "512x512"))
    if run.error:
        return [Row("live stream, 512x512", f"failed: {run.error}")]
    durations = run.fragment_durations
    return [
        Row(
            f"live end-to-end latency, 512x512, 1 stream ({run.audio_seconds:.1f} s of PCM at "
            f"real-time pace, {len(run.latencies)} fragments)",
            f"p50 {ms(pct(run.latencies, 50))}, p95 {ms(pct(run.latencies, 95))}, "
            f"max {ms(max(run.latencies))}; end of audio -> summary {ms(run.tail)}",
            f"first media chunk {ms(run.first_chunk)} after the config",
            "<= 400 ms",
        ),
        Row(
            "live fragment duration",
            f"mean {ms(statistics.fmean(durations))}, min {ms(min(durations))}, "
            f"max {ms(max(durations))}",
            "",
            "<= 200 ms",
        ),
    ]


def live_lipsync(address: str, audio: Path, video: Path, raw: bool = False) -> list[Row]:
    """Live lipsync: the speaker video like a live camera's (a fragment per frame, or with
    ``raw`` uncompressed I420 frames) and the speech as PCM, both paced in real time on one
    clock."""
    pcm, rate = _pcm(audio)
    run = asyncio.run(live_run(address, pcm, rate, None, None, video=video, raw=raw))
    label = f"live lipsync, {video.stem}"
    sent = "uncompressed I420 frames" if raw else "fragmented MP4"
    if run.error:
        return [Row(label, f"failed: {run.error}")]
    return [
        Row(
            f"{label}, 1 stream ({run.audio_seconds:.1f} s of PCM and the video as {sent}, "
            f"both at real-time pace; {len(run.latencies)} fragments)",
            f"p50 {ms(pct(run.latencies, 50))}, p95 {ms(pct(run.latencies, 95))}, "
            f"max {ms(max(run.latencies))} from the later of a fragment's audio and its last "
            f"frame; end of audio -> summary {ms(run.tail)}",
            f"first media chunk {ms(run.first_chunk)} after the config",
            "<= 500 ms (issue 12)",
        )
    ]


def _keeps_up(runs: list[LiveRun]) -> bool:
    return all(not r.error and r.worst <= BEHIND_SECONDS for r in runs)


def concurrency(address: str, audio: Path, image: bytes, max_streams: int) -> list[Row]:
    """Ramp 1, 2, 3, ... simultaneous live streams until one falls behind by > 1 s."""
    pcm, rate = _pcm(audio)
    best = 0
    steps = []
    for n in range(1, max_streams + 1):
        runs = asyncio.run(live_runs(address, pcm, rate, image, "512x512", n))
        latencies = [x for r in runs for x in r.latencies]
        worst = max(r.worst for r in runs)
        errors = sum(bool(r.error) for r in runs)
        failures = sorted({r.error.split(":")[0] for r in runs if r.error})
        per_stream = [pct(r.latencies, 95) for r in runs if r.latencies]
        spread = (
            f" (per stream {ms(min(per_stream))}-{ms(max(per_stream))})"
            if n > 1 and per_stream
            else ""
        )
        steps.append(
            f"{n}: p95 {ms(pct(latencies, 95))}{spread}, worst {ms(worst)}"
            + (f", {errors} failed ({', '.join(failures)})" if errors else "")
        )
        if not _keeps_up(runs):
            break
        best = n
    return [
        Row(
            f"simultaneous live streams that keep real time, 512x512 ({len(pcm) / 2 / rate:.0f} s "
            f"each; behind = a fragment or the end > {BEHIND_SECONDS:g} s late)",
            f"{best}" + (f" (the ramp's limit, {max_streams})" if best == max_streams else ""),
            "; ".join(steps),
            ">= 3",
        )
    ]


def fairness(address: str, audio: Path, image: bytes, streams: int) -> list[Row]:
    """``streams`` file uploads started together: do they share the machine evenly?"""
    alone = file_run(address, audio, image, "512x512")
    with ThreadPoolExecutor(streams) as pool:
        results = list(
            pool.map(lambda _: file_run(address, audio, image, "512x512"), range(streams))
        )
    totals = sorted(r.total for r in results)
    firsts = sorted(r.first_chunk for r in results)
    return [
        Row(
            f"fairness: {streams} file uploads started together, 512x512 ({alone.duration:.1f} s "
            "of audio each)",
            f"each done in {totals[0]:.2f}-{totals[-1]:.2f} s (slowest / fastest "
            f"{totals[-1] / totals[0]:.2f}); first chunks {ms(firsts[0])}-{ms(firsts[-1])}",
            f"one upload alone: {alone.total:.2f} s; all {streams} together: {totals[-1]:.2f} s "
            f"= {totals[-1] / (streams * alone.total):.2f} x {streams} uploads' time one by one",
            "even shares (slowest / fastest near 1)",
        )
    ]


def lipsync_fairness(address: str, audio: Path, video: Path, streams: int = 2) -> list[Row]:
    """``streams`` lipsync uploads of the same speaker video started together."""
    alone = file_run(address, audio, None, None, video)
    with ThreadPoolExecutor(streams) as pool:
        results = list(
            pool.map(lambda _: file_run(address, audio, None, None, video), range(streams))
        )
    totals = sorted(r.total for r in results)
    firsts = sorted(r.first_chunk for r in results)
    return [
        Row(
            f"lipsync fairness: {streams} uploads of {video.stem} started together "
            f"({alone.duration:.1f} s of video each)",
            f"each done in {totals[0]:.2f}-{totals[-1]:.2f} s (slowest / fastest "
            f"{totals[-1] / totals[0]:.2f}); first chunks {ms(firsts[0])}-{ms(firsts[-1])}",
            f"one upload alone: {alone.total:.2f} s; together: {totals[-1]:.2f} s = "
            f"{totals[-1] / (streams * alone.total):.2f} x their time one by one",
            "finish within 15 % of each other (slowest / fastest <= 1.15)",
        )
    ]


def memory(address: str, inputs: list[tuple[str, Path]], image: bytes, size: str) -> list[Row]:
    """Peak RSS of the server and of the Triton process tree during one file upload each."""
    pids = StackPids.find()
    rows = []
    first = None
    for label, audio in inputs:
        with PeakSampler(pids) as sampler:
            result = file_run(address, audio, image, size)
        peaks = (sampler.server_peak, sampler.triton_peak)
        baseline = (
            f"idle before: server {mib(sampler.server_idle)}, Triton {mib(sampler.triton_idle)}"
        )
        if first is not None:
            baseline += (
                f"; vs the {first[0]} input: server {(peaks[0] - first[1][0]) / 2**20:+.0f} MiB, "
                f"Triton {(peaks[1] - first[1][1]) / 2**20:+.0f} MiB"
            )
        else:
            first = (label, peaks)
        rows.append(
            Row(
                f"peak RSS, {label} input ({result.duration:.0f} s of video, {size}, rendered "
                f"in {result.total:.0f} s)",
                f"server {mib(peaks[0])}, Triton {mib(peaks[1])} "
                f"({sampler.triton_processes} processes: tritonserver + backend stubs)",
                baseline,
                "" if first[0] == label else f"<= the {first[0]} input + 50 MB",
            )
        )
    return rows


def triton_rows(stats: list[triton_stats.ModelStats]) -> list[Row]:
    rows = []
    for s in stats:
        m = s.mean_ms
        rows.append(
            Row(
                f"Triton statistics, {s.model} (mean per request over this run)",
                f"{s.requests} requests, {m['success']:.1f} ms each: queue {m['queue']:.1f}, "
                f"input {m['compute_input']:.2f}, infer {m['compute_infer']:.1f}, "
                f"output {m['compute_output']:.2f} ms",
                "talking_avatar: 1 request = one piece of >= 100 ms of audio (its frames)"
                if s.model == "talking_avatar"
                else "once per generation (portrait analysis)",
                "",
            )
        )
    return rows
