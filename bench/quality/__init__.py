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
* lipsync: lower-face sharpness (variance of the Laplacian on the skin between the lips and
  the chin/cheeks, source landmarks, output / source, median over frames);
* every clip: folds/glitches, frames whose mouth shape (in the face's own frame) pops away from
  both neighbours and back (``metrics.GLITCH_IOD``);
* lipsync: how often each mouth path was taken, as the service counts it (``Summary.
  mouth_sources``: warp / retrieved from the speaker's own video / no face), a count for
  reading the other columns, not a measurement.

Harder inputs: a smile with teeth (astronaut), tilted 12 degrees on 9:16, Grace Hopper, the
cameraman (three-quarter view), a face 80 px wide in 720x720, a close-up filling 1080x1080, and
speaker videos that pan, zoom and turn +-20 degrees (a perspective warp of the face region: an
approximation of a yaw). ``python -m bench.quality.selfcheck`` checks the new measures on
synthetic frames; ``python -m bench.quality.look`` writes mouth contact sheets (the run writes
them to ``$BENCH_QUALITY_OUT/looks/``).

``BENCH_QUALITY_OUT=DIR`` keeps the inputs and rendered clips in DIR. The service's own
timeline and face box are never used as measurements. Figures, not
assertions: ``tests/integration/test_quality_bench.py`` only checks that the measures work.
"""
