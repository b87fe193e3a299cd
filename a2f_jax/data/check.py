"""Validate a dataset against its config before preprocessing, and list its shots.

Checks, per actor of ACTOR_NAMES: every configured file exists and parses; vertex counts agree
across the skin neutral, every skin cache, the deltas and the blendshapes (tongue likewise); caches
hold no NaN/Inf; vertex indices are in range; every shot's emotion resolves to a name of
SHOT_EMOTION_NAMES; every clip's audio exists, has a consistent WAV layout and decodes, and its
duration matches its shot's animation within one frame (training reads every clip's audio from its
shot's first frame); clip ranges lie inside their shots. All problems are collected, not just the first.
Training runs the same clip audio checks (`clip_audio_problems`) before its first step.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Iterable

import numpy as np
import soundfile

from a2f_jax.data import audio, caches
from a2f_jax.data.actor import ActorData, ActorSettings, actor_value, check_emotion_known, check_vertex_count
from a2f_jax.errors import A2FError, DataError, describe


@dataclasses.dataclass
class ShotRow:
    actor: str
    shot: str
    frames: int
    seconds: float
    audio_seconds: float | None
    emotion: str
    language: str
    cache_format: str
    tongue: bool


@dataclasses.dataclass
class Report:
    rows: list[ShotRow] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def audio_seconds(path: pathlib.Path) -> float:
    """Duration from the header, after checking the WAV layout and that the file decodes (a corrupt
    body fails to read)."""
    if not path.is_file():
        raise DataError(describe(path, None, "an audio file", "no such file"))
    audio.check_wav_layout(path)
    try:
        info = soundfile.info(str(path))
        with soundfile.SoundFile(str(path)) as f:
            f.read(min(info.frames, 1024), dtype="float32")
    except audio.SOUNDFILE_ERRORS as err:
        raise DataError(describe(path, None, "a readable audio file (WAV)", f"{type(err).__name__}: {err}")) from err
    if info.frames == 0:
        raise DataError(describe(path, "samples", "at least one audio sample", "an empty track"))
    return info.frames / float(info.samplerate)


def duration_problem(path: pathlib.Path, seconds: float, frames: int, fps: float) -> str | None:
    """The audio of a shot must last as long as its animation, within one frame (frame i is at
    (i + 0.5) / fps in the audio, from the first sample)."""
    anim_seconds = frames / fps
    if abs(seconds - anim_seconds) <= 1.0 / fps + 1e-9:
        return None
    return describe(
        path,
        "duration",
        f"{anim_seconds:.3f} s (the {frames} frames of the skin cache at {fps:g} fps) within one frame",
        f"{seconds:.3f} s",
    )


def clip_audio_problems(path: pathlib.Path, frames: int, fps: float) -> tuple[float | None, list[str]]:
    """(audio seconds or None, problems) of a clip's audio against its shot's `frames` at `fps`: the
    file exists, has a consistent layout, decodes, and lasts as long as the animation."""
    try:
        seconds = audio_seconds(path)
    except A2FError as err:
        return None, [str(err)]
    problem = duration_problem(path, seconds, frames, fps)
    return seconds, [] if problem is None else [problem]


def _clips_for_actor(cfg_train: Any, actor: str) -> list[tuple]:
    """CLIPS and VALIDATION_CLIPS of config_train for this actor (as tuples)."""
    if cfg_train is None:
        return []
    clips = list(cfg_train.get("CLIPS") or []) + list(cfg_train.get("VALIDATION_CLIPS") or [])
    return [tuple(c) for c in clips if c[0] == actor]


def check_actor(cfg_dataset: Any, actor: str, cfg_train: Any = None, cfg_preproc: Any = None, report: Report | None = None) -> Report:
    report = report if report is not None else Report()
    try:
        settings = ActorSettings.from_configs(cfg_dataset, actor, cfg_preproc)
    except A2FError as err:
        report.errors.append(str(err))
        return report
    try:
        data = ActorData.load(settings)
    except A2FError as err:
        report.errors.append(str(err))
        # Go on with the caches and audio alone, so one run lists every problem.
        try:
            data = ActorData.load(settings.core_only())
        except A2FError:
            return report
    fps = actor_value(cfg_dataset, "CACHE_FPS", actor)
    if fps is None:
        report.errors.append(describe("config_dataset.CACHE_FPS", actor, "the cache frame rate of the actor", "none"))
        return report
    fps = float(fps)
    num_verts = data.num_skin_verts

    # Blendshape deltas must match the skin/tongue vertex counts.
    for label, shapes, count in (
        ("BLENDSHAPE_SKIN_FPATH", data.blendshapes_skin, num_verts),
        ("BLENDSHAPE_TONGUE_FPATH", data.blendshapes_tongue, None if data.tongue_neutral is None else data.tongue_neutral.shape[0]),
    ):
        if shapes is None or count is None:
            continue
        for name in [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(shapes.get("poseNames", [])).tolist()]:
            if name not in shapes:
                report.errors.append(describe(data.paths[label], name, "a delta array for every poseNames entry", "none"))
            elif shapes[name].shape != (count, 3):
                report.errors.append(describe(data.paths[label], name, f"[{count}, 3]", str(list(shapes[name].shape))))

    skin_root = data.paths.get("SKIN_CACHE_ROOT")
    shots = data.skin_shots()
    if not shots:
        report.errors.append(describe(skin_root, f"SKIN_CACHE_ROOT[{actor}]", "at least one shot", "none"))
        return report
    frames: dict[str, int] = {}
    formats: dict[str, str] = {}
    for shot in shots:
        try:
            path = caches.find_cache_file(skin_root, shot)
            x = caches.read_cache(path)
            check_vertex_count(x, num_verts, path, axis=1, what="skin vertices (as the neutral / first cache)")
            frames[shot], formats[shot] = int(x.shape[0]), path.suffix
        except A2FError as err:
            report.errors.append(str(err))

    tongue_shots: set[str] = set()
    tongue_root = data.paths.get("TONGUE_CACHE_ROOT")
    if tongue_root is not None:
        num_tongue = None if data.tongue_neutral is None else data.tongue_neutral.shape[0]
        for shot in data.tongue_shots():
            try:
                path = caches.find_cache_file(tongue_root, shot)
                x = caches.read_cache(path)
                if num_tongue is not None:
                    check_vertex_count(x, num_tongue, path, axis=1, what="tongue vertices (as the tongue neutral)")
                if shot not in frames:  # the original computes its coefficients, training never reads them
                    report.warnings.append(describe(path, "shot", "a shot that also has a skin cache (unused)", repr(shot)))
                elif x.shape[0] != frames[shot]:
                    report.warnings.append(
                        describe(path, "frames", f"{frames[shot]} frames (as the skin cache)", f"{x.shape[0]} (training trims)")
                    )
                tongue_shots.add(shot)
            except A2FError as err:
                report.errors.append(str(err))

    for label, anim in (("JAW_ANIM_DATA_FPATH", data.jaw_anim), ("EYE_ANIM_DATA_FPATH", data.eye_anim)):
        if anim is None:
            continue
        for shot, count in frames.items():
            if shot not in anim:
                report.errors.append(describe(data.paths[label], shot, "an entry for every skin shot", "none"))
            elif anim[shot].shape[0] != count:
                report.warnings.append(
                    describe(data.paths[label], shot, f"{count} frames (as the skin cache)", f"{anim[shot].shape[0]} (training trims)")
                )

    emotions: dict[str, str] = {}
    for shot in shots:
        try:
            emotions[shot] = check_emotion_known(data.settings.emotions, actor, shot)
        except A2FError as err:
            report.errors.append(str(err))

    # Audio: the clips of config_train if given, else <shot>.wav for every shot (the clips template).
    audio_root = data.paths.get("AUDIO_ROOT")
    # Clips of config_train must have their audio; shots no clip covers are checked for <shot>.wav
    # (the clips template's name), but a missing file there is only a warning.
    clips = [(c, True) for c in _clips_for_actor(cfg_train, actor)]
    covered = {c[1] for c, _ in clips}
    clips += [((actor, s, (0, frames[s] - 1), actor, "en", f"{s}.wav", 0), False) for s in shots if s in frames and s not in covered]
    audio_len: dict[str, float] = {}
    language: dict[str, str] = {}
    audio_checked: set[tuple[pathlib.Path, str]] = set()  # several clips of a shot may share one file
    for clip, required in clips:
        _, shot, (first, last), _, lang, rel, offset = clip
        if shot not in frames:
            if shot not in shots:
                report.errors.append(describe("config_train.CLIPS", f"clip of {shot!r}", f"a shot of {actor!r}", "no such shot"))
            continue
        if not 0 <= first <= last < frames[shot]:
            report.errors.append(
                describe("config_train.CLIPS", f"clip of {shot!r}", f"a range inside [0, {frames[shot] - 1}]", f"({first}, {last})")
            )
        if audio_root is None:
            report.errors.append(describe("config_dataset.AUDIO_ROOT", actor, "an audio folder for the actor", "none"))
            break
        path = audio_root / rel
        if not required and not path.exists():
            report.warnings.append(describe(path, f"shot {shot!r}", "its audio (no clip names another file)", "no such file"))
            continue
        if (path, shot) in audio_checked:
            continue
        audio_checked.add((path, shot))
        seconds, problems = clip_audio_problems(path, frames[shot], fps)
        report.errors.extend(problems)
        if seconds is None:
            continue
        language.setdefault(shot, lang)
        if rel == f"{shot}.wav":
            audio_len[shot] = seconds

    for shot in shots:
        if shot in frames:
            report.rows.append(
                ShotRow(
                    actor=actor,
                    shot=shot,
                    frames=frames[shot],
                    seconds=frames[shot] / fps,
                    audio_seconds=audio_len.get(shot),
                    emotion=emotions.get(shot, "?"),
                    language=language.get(shot, "en"),
                    cache_format=formats[shot],
                    tongue=shot in tongue_shots,
                )
            )
    return report


def check_dataset(cfg_dataset: Any, cfg_train: Any = None, cfg_preproc: Any = None, actors: Iterable[str] | None = None) -> Report:
    """Check every actor of ACTOR_NAMES (or `actors`)."""
    report = Report()
    names = list(actors) if actors is not None else list(cfg_dataset.get("ACTOR_NAMES") or [])
    if not names:
        report.errors.append(describe("config_dataset.ACTOR_NAMES", None, "at least one actor", "an empty list"))
    for actor in names:
        check_actor(cfg_dataset, actor, cfg_train, cfg_preproc, report)
    return report


def format_table(rows: list[ShotRow]) -> str:
    header = ("actor", "shot", "frames", "seconds", "audio s", "emotion", "lang", "format", "tongue")
    body = [
        (
            r.actor,
            r.shot,
            str(r.frames),
            f"{r.seconds:.2f}",
            "-" if r.audio_seconds is None else f"{r.audio_seconds:.2f}",
            r.emotion,
            r.language,
            r.cache_format,
            "yes" if r.tongue else "no",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in body]
    total = sum(r.frames for r in rows)
    lines.append(f"{len(rows)} shots, {total} frames")
    return "\n".join(lines)
