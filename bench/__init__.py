"""a2v benchmarks: ``make bench`` (or ``python -m bench``) prints one table.

The benchmark starts its own stack (``devstack.stack.LocalStack``: Triton plus the a2v server on
free loopback ports), drives it from the client side like a user would, and stops it. Figures:

* first media chunk for a file upload, from the client (config sent -> first chunk received) and
  from the server (``Summary.timings.first_chunk_seconds``), p50/p95 over ``BENCH_RUNS`` runs;
* live end-to-end latency: PCM sent at real-time pace in 20 ms pieces; per fragment, arrival time
  minus the send time of the audio at the fragment's end; fragment durations;
* real-time factor (audio seconds / wall seconds) and frames per second at 512x512 and 1280x720,
  against the encode-only ceiling (``bench.ceiling``), one ceiling run after each service run;
* the most simultaneous live streams that keep real time, with the per-stream p95 spread;
* fairness: one file upload per model instance, started together (spread of finish times, and
  total time against running them one by one);
* peak RSS of the server and of the Triton process tree for a 10 s and (``BENCH_LONG=1``) a
  10 min input (``bench.procmem``);
* Triton's own per-request statistics per model (``bench.triton_stats``).

Then a second table, the models' algorithms timed in-process without Triton (``bench.models``,
also runnable alone as ``python -m bench.models``): mouth motion, mouth render and the full
avatar frame per frame at 512x512 and 1280x720, face analysis and renderer setup per portrait.

Environment: ``BENCH_RUNS`` (default 10), ``BENCH_LONG=1`` (adds the 10-minute memory run,
about 2 minutes), ``BENCH_MAX_STREAMS`` (default 6), ``BENCH_MODEL_FRAMES`` (default 300, the
models section). Benchmarks print figures; nothing here asserts on time.
"""
