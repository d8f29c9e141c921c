"""Which GenerateConfig settings each model uses, and what a generation reports about the
settings it was given: those with no effect (Accepted.ignored_settings) and those that will
probably not do what the caller meant (Accepted.warnings).

Settings are named by their path in GenerateConfig ("output.fps", "animation.blink_rate"), as
ModelInfo.settings lists them. The spec holds resolved values, so a default given explicitly
(sync_mode bounce, face index 0, fps 25) looks like an unset one and is not reported.

The transcript rule: the model aligns English text only. It reads the words of a-z letters of
the transcript, looks each up in its English dictionary and skips the ones it does not know.
Without one word of a-z letters, the transcript is ignored (the phones are recognised from the
audio). Otherwise, from 4 words on, a transcript in which fewer than 15 % of the words are
common English words (function words such as "the", "and", "you") is reported as probably not
English: forced to English phones, it would give wrong mouth shapes. Common English prose has
35-50 % of them; a short list of technical terms or names may be reported as a false alarm.
"""

from __future__ import annotations

import re

from a2v_server import catalog
from a2v_server.catalog import InputKind, OfferedModel
from a2v_server.domain import DEFAULT_FPS, GenerateSpec

#: every setting of GenerateConfig a model may use, in the order of the config's fields
ALL_SETTINGS = (
    "output.container",
    "output.video_codec",
    "output.audio_codec",
    "output.fps",
    "output.resolution",
    "output.aspect_ratio",
    "output.fit",
    "prompt",
    "trim",
    "seed",
    "request_id",
    "transcript",
    "animation.expression_scale",
    "animation.head_motion_scale",
    "animation.blink_rate",
    "sync_mode",
    "face",
    "include_timeline",
    "resumable",
    "range",
    "speakers",
    "channel_speakers",
)
#: settings only the talking avatar uses (it makes the motion; lipsync keeps the video's)
_AVATAR_ONLY = {
    "output.fps",
    "transcript",
    "animation.expression_scale",
    "animation.head_motion_scale",
    "animation.blink_rate",
}
#: settings only lipsync uses (they are about a speaker video)
_LIPSYNC_ONLY = {"sync_mode", "face"}

MIN_TRANSCRIPT_WORDS = 4
MIN_ENGLISH_SHARE = 0.15
#: frequent English words that are rare in other languages written in Latin letters (words
#: such as "a", "in", "is", "so", "was", "will", "also" are left out: they are frequent in
#: French, German, Dutch, Spanish or Italian too)
_COMMON_WORDS = """
    the and to that it for you he with they his this but by from we her she or my all would
    there their what up out if about who get which go when make can like time no just him
    know take people into year your good some could them see other than then now look only
    come its over think back after use two how our work first well way even new want because
    any these give day most us are were been has had did does said do i it's i'm don't can't
    that's there's you're we're let's isn't didn't won't hello hi yes yeah okay thank thanks
    please here where why very much more many should must being those each every through
    before again too own same off down still never always really right today welcome
    everyone everybody something nothing thing things little great world life going
"""
_COMMON_ENGLISH = frozenset(_COMMON_WORDS.split())


def settings_used(model: OfferedModel) -> tuple[str, ...]:
    """The GenerateConfig settings ``model`` uses (ModelInfo.settings)."""
    other = _AVATAR_ONLY if InputKind.VIDEO in model.inputs else _LIPSYNC_ONLY
    return tuple(s for s in ALL_SETTINGS if s not in other)


def _only(setting: str) -> str:
    users = [m.name for m in catalog.MODELS.values() if setting in settings_used(m)]
    return f"only {' and '.join(users)} uses it" if users else "no model uses it"


def ignored_settings(spec: GenerateSpec, model: OfferedModel, fps: float) -> tuple[str, ...]:
    """Settings given in ``spec`` that have no effect on this generation (``fps``: the output's
    frame rate), each as "path: why"."""
    used = settings_used(model)
    found: list[str] = []
    if "output.fps" not in used and spec.fps not in (DEFAULT_FPS, fps):
        found.append(
            f"output.fps: {model.name} keeps the speaker video's frame rate ({fps:g} fps); "
            f"{_only('output.fps')}"
        )
    if "transcript" not in used and spec.transcript:
        found.append(f"transcript: {_only('transcript')}; {model.name} follows the audio itself")
    elif spec.transcript and not _model_words(spec.transcript):
        found.append(
            "transcript: it has no word written in the letters a-z, and the model aligns English "
            "text only: the phones are recognised from the audio instead"
        )
    for name in ("expression_scale", "head_motion_scale", "blink_rate"):
        if f"animation.{name}" not in used and getattr(spec, name) is not None:
            found.append(
                f"animation.{name}: {_only(f'animation.{name}')}; {model.name} keeps the "
                "speaker's own motion"
            )
    if "sync_mode" not in used and spec.sync_mode != "bounce":
        found.append(
            f"sync_mode: {_only('sync_mode')} (it matches a speaker video's length to the audio)"
        )
    if "face" not in used and (spec.face_index != 0 or spec.face_box is not None):
        found.append(
            f"face: {_only('face')}; {model.name} animates the largest face of the portrait"
        )
    return tuple(found)


def setting_warnings(spec: GenerateSpec, model: OfferedModel) -> tuple[str, ...]:
    """Settings that are used but probably not as the caller meant, each as "path: why"."""
    found: list[str] = []
    if "transcript" in settings_used(model) and _model_words(spec.transcript):
        words = re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)*", spec.transcript.lower())
        common = sum(w in _COMMON_ENGLISH for w in words)
        if len(words) >= MIN_TRANSCRIPT_WORDS and common < MIN_ENGLISH_SHARE * len(words):
            found.append(
                f"transcript: it does not look like English ({common} of its {len(words)} "
                "words are common English words); the model aligns English text only and "
                "skips words it does not know, which gives wrong mouth shapes for other "
                "languages: leave the transcript out for them"
            )
    return tuple(found)


def _model_words(transcript: str) -> list[str]:
    """The words the model reads from a transcript (model_repository/talking_avatar/1/phones.py
    ``transcript_phones``)."""
    return re.findall(r"[a-z]+(?:'[a-z]+)?", transcript.lower())
