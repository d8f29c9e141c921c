"""a2v quality benchmark: ``make bench-quality`` (or ``python -m bench.quality``).

Makes its inputs on the spot (espeak-ng speech in five voices and languages with pauses and
silence, a sox beat track, three portraits, a still video, speaker videos rendered by the
service itself from other speech), starts its own stack (``devstack.stack.LocalStack`` on free
loopback ports), renders every input through the running service with ``a2v_client.Client``,
stops the stack, then measures the OUTPUT files from the outside (``bench.quality.metrics``):

* lip sync: dlib's 68 landmarks re-detected in every decoded frame -> mouth opening (inner-lip
  gap / mouth width); the RMS of the output's own AAC track over each frame's display interval;
  their cross-correlation over lags -10..+10 frames -> best lag (sync offset) and correlation;
* mouth opening in speech vs silence (frames classified from the output's audio);
* landmark jitter on a still head (lipsync on a still video with silent audio; the avatar with
  head motion and blinks off);
* lipsync: PSNR of the pixels outside the face (face box + jaw margin from the source frame's
  landmarks) against the source video's frames;
* music: periodicity of frame-difference energy and of the head's vertical position at the
  known tempo, beat-phase locking, and the mouth staying closed.

``BENCH_QUALITY_OUT=DIR`` keeps the inputs and rendered clips in DIR. The service's own
timeline and face box are never used as measurements. Figures, not
assertions: ``tests/integration/test_quality_bench.py`` only checks that the measures work.
"""
