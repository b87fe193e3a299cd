"""Training data as the original assembles it: shots, clips, muted shots, emotion vectors, targets.

Reads the preprocessing artifacts of each actor (PCA coefficients and bases, `data_info.json`,
`shots.json`) plus the optional jaw/eye animation files of the dataset, and exposes per-shot target
arrays `[F, D]` in the order of `TARGET_CHANNELS` (docs/training.md "Sampling").
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from typing import Any, Sequence

import numpy as np

from a2f_jax.data import caches, check
from a2f_jax.data.actor import actor_value, load_json, load_npz
from a2f_jax.errors import ConfigError, DataError, describe
from a2f_jax.runs import PreprocRun

log = logging.getLogger(__name__)

# Channel widths that never depend on the data (jaw: 5 keypoints × xyz, eye: 2 eyes × (x, y)).
_DEFAULT_JAW_SIZE = 15
_DEFAULT_EYE_SIZE = 4


@dataclasses.dataclass(frozen=True)
class Shot:
    """A shot of `shots.json` (or a muted shot appended after all real shots)."""

    actor: str
    name: str
    length: int
    fps: float
    emotion: str
    start_global: int  # first row of this shot in the implicit emotion database
    muted: bool = False
    source: tuple[str, int] | None = None  # muted shots: (source shot, source frame)

    @property
    def id(self) -> str:
        return self.name if not self.muted else f"muted::{self.start_global}"


@dataclasses.dataclass(frozen=True)
class Clip:
    """One `CLIPS` entry after offset clipping (frames are inclusive), or a muted clip."""

    actor: str
    shot: str
    first: int
    last: int
    speaker: str
    lang: str
    audio_path: pathlib.Path | None  # None for muted clips
    offset_frames: float
    shot_index: int  # index into `TrainingData.shots`
    muted: bool = False

    @property
    def length(self) -> int:
        return self.last - self.first + 1


@dataclasses.dataclass
class ActorArtifacts:
    """The preprocessing artifacts training reads for one actor."""

    actor: str
    preproc_dir: pathlib.Path | None
    skin_shapes: np.ndarray  # [Ks, V, 3]
    skin_mean: np.ndarray  # [V, 3]
    tongue_shapes: np.ndarray  # [Kt, Vt, 3]
    tongue_mean: np.ndarray  # [Vt, 3]
    skin_coeffs: dict[str, np.ndarray]  # shot -> [F, Ks]
    tongue_coeffs: dict[str, np.ndarray]  # shot -> [F, Kt] (or only "placeholder")
    data_info: dict[str, Any]
    shots: list[list[Any]]  # rows [actor, shot, len, fps, emotion]
    mean_geometry: np.ndarray  # [3V + 3Vt + jaw + eye] float64
    jaw_anim: dict[str, np.ndarray] | None  # shot -> [F, N, 3] deltas
    eye_anim: dict[str, np.ndarray] | None  # shot -> [F, 2, 2] angles

    @property
    def num_skin_coeffs(self) -> int:
        return int(self.skin_shapes.shape[0])

    @property
    def num_tongue_coeffs(self) -> int:
        return int(self.tongue_shapes.shape[0])

    @property
    def jaw_size(self) -> int:
        return 3 * int(self.data_info.get("num_keypoints_jaw", 5))

    @property
    def eye_size(self) -> int:
        return 2 * int(self.data_info.get("num_angles_eye", 2))


def _load_npz(path: pathlib.Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(describe(path, None, "a preprocessing artifact (npz)", "no such file"))
    return load_npz(path)


def preproc_dir_for(train_cfg: Any, actor: str) -> pathlib.Path:
    """`PREPROC_ROOT/PREPROC_RUN_NAME_FULL[actor]`, resolving "latest" to the newest run of the actor."""
    name = actor_value(train_cfg, "PREPROC_RUN_NAME_FULL", actor)
    root = pathlib.Path(str(train_cfg.PREPROC_ROOT))
    if not name:
        raise ConfigError(
            describe("config_train", f"PREPROC_RUN_NAME_FULL[{actor!r}]", "the name of a preprocessing run (or 'latest')", "nothing")
        )
    if str(name).startswith("XXXXXX_XXXXXX"):
        raise ConfigError(
            describe("config_train", "PREPROC_RUN_NAME_FULL", "the full preproc run name printed by preprocessing", f"the placeholder {name!r}")
        )
    return PreprocRun.resolve(root, actor, str(name)).path


def load_actor_artifacts(train_cfg: Any, dataset_cfg: Any, actor: str) -> ActorArtifacts:
    """Read the artifacts training needs for `actor` (paths overridable by the `*_FPATH` dicts)."""
    needs_preproc = any(
        actor_value(train_cfg, k, actor) is None
        for k in ("SKIN_PCA_COEFFS_FPATH", "SKIN_PCA_SHAPES_FPATH", "TONGUE_PCA_COEFFS_FPATH",
                  "TONGUE_PCA_SHAPES_FPATH", "DATA_INFO_FPATH", "SHOT_LIST_FPATH")
    )
    pdir = preproc_dir_for(train_cfg, actor) if needs_preproc else None

    def path(key: str, rel: str) -> pathlib.Path:
        override = actor_value(train_cfg, key, actor)
        return pathlib.Path(override) if override else pdir / rel  # type: ignore[operator]

    skin_shapes = _load_npz(path("SKIN_PCA_SHAPES_FPATH", PreprocRun.pca_shapes_name("skin")))
    tongue_shapes = _load_npz(path("TONGUE_PCA_SHAPES_FPATH", PreprocRun.pca_shapes_name("tongue")))
    skin_coeffs = _load_npz(path("SKIN_PCA_COEFFS_FPATH", PreprocRun.pca_coeffs_name("skin")))
    tongue_coeffs = _load_npz(path("TONGUE_PCA_COEFFS_FPATH", PreprocRun.pca_coeffs_name("tongue")))
    info_path = path("DATA_INFO_FPATH", PreprocRun.DATA_INFO)
    shots_path = path("SHOT_LIST_FPATH", PreprocRun.SHOTS)
    for p in (info_path, shots_path):
        if not p.is_file():
            raise DataError(describe(p, None, "a preprocessing artifact (json)", "no such file"))
    data_info, shots = load_json(info_path), load_json(shots_path)
    if not isinstance(data_info, dict):
        raise DataError(describe(info_path, None, "a JSON object", type(data_info).__name__))
    if not isinstance(shots, list) or not all(isinstance(row, list) for row in shots):
        raise DataError(describe(shots_path, None, "a JSON list of [actor, shot, len, fps, emotion] rows", repr(shots)[:80]))
    mean_name = PreprocRun.MEAN_GEOMETRY
    mean_geometry_path = (pdir / mean_name) if pdir else info_path.parent / pathlib.PurePosixPath(mean_name).name
    mean_geometry = caches.load_npy(mean_geometry_path) if mean_geometry_path.is_file() else np.zeros(0)

    def optional_npz(key: str) -> dict[str, np.ndarray] | None:
        p = actor_value(dataset_cfg, key, actor)
        return _load_npz(pathlib.Path(p)) if p else None

    for key in ("shapes_matrix", "shapes_mean"):
        for name, z in (("skin", skin_shapes), ("tongue", tongue_shapes)):
            if key not in z:
                raise DataError(describe(f"{name}_pca_shapes.npz", key, "key present", f"keys {sorted(z)}"))
    return ActorArtifacts(
        actor=actor,
        preproc_dir=pdir,
        skin_shapes=skin_shapes["shapes_matrix"].astype(np.float32),
        skin_mean=skin_shapes["shapes_mean"].astype(np.float32).reshape(-1, 3),
        tongue_shapes=tongue_shapes["shapes_matrix"].astype(np.float32),
        tongue_mean=tongue_shapes["shapes_mean"].astype(np.float32).reshape(-1, 3),
        skin_coeffs=skin_coeffs,
        tongue_coeffs=tongue_coeffs,
        data_info=data_info,
        shots=shots,
        mean_geometry=mean_geometry,
        jaw_anim=optional_npz("JAW_ANIM_DATA_FPATH"),
        eye_anim=optional_npz("EYE_ANIM_DATA_FPATH"),
    )


def explicit_emotion_names(train_cfg: Any, dataset_cfg: Any) -> list[str]:
    """SHOT_EMOTION_NAMES without the all-zeros emotion, in order (docs/training.md "Clips and emotions")."""
    names = list(dataset_cfg.SHOT_EMOTION_NAMES)
    zero = train_cfg.SHOT_EMOTION_NAME_FOR_ALL_ZEROS
    return [n for n in names if n != zero]


def emotion_vector(emotion: str, explicit_names: Sequence[str]) -> np.ndarray:
    """One-hot over the explicit emotions; the all-zeros emotion gives the zero vector."""
    vec = np.zeros(len(explicit_names), np.float32)
    if emotion in explicit_names:
        vec[list(explicit_names).index(emotion)] = 1.0
    return vec


def channel_sizes(channels: Sequence[str], art: ActorArtifacts) -> dict[str, int]:
    sizes = {
        "skin_coeffs": art.num_skin_coeffs,
        "tongue_coeffs": art.num_tongue_coeffs,
        "jaw": art.jaw_size,
        "eye": art.eye_size,
        "skin_pose": 3 * art.skin_mean.shape[0],
        "tongue_pose": 3 * art.tongue_mean.shape[0],
    }
    unknown = [c for c in channels if c not in sizes]
    if unknown:
        raise ConfigError(describe("config_train", "TARGET_CHANNELS", f"names from {sorted(sizes)}", repr(unknown)))
    return {c: sizes[c] for c in channels}


def _scale(art: ActorArtifacts, channel: str) -> tuple[np.ndarray, float]:
    info = art.data_info
    t = np.asarray(info.get(f"translate_{channel}", 0.0), np.float32)
    s = float(info.get(f"scale_{channel}", 1.0))
    return t, s


def shot_target(art: ActorArtifacts, shot: str, channels: Sequence[str], rescale: bool) -> np.ndarray:
    """Target rows `[F, D]` of one real shot, channels concatenated in order (docs/training.md "Targets")."""
    parts: list[np.ndarray | None] = []
    sizes = channel_sizes(channels, art)
    for ch in channels:
        arr: np.ndarray | None
        if ch in ("skin_coeffs", "skin_pose"):
            arr = art.skin_coeffs.get(shot)
            if arr is None:
                raise DataError(describe("skin_pca_coeffs_all.npz", shot, "coefficients for every shot of shots.json", "no such key"))
            if ch == "skin_pose":
                arr = np.einsum("fk,kv->fv", arr, art.skin_shapes.reshape(art.num_skin_coeffs, -1)) + art.skin_mean.reshape(1, -1)
                if rescale:
                    t, s = _scale(art, "skin")
                    arr = ((arr.reshape(len(arr), -1, 3) - t) / s).reshape(len(arr), -1)
        elif ch in ("tongue_coeffs", "tongue_pose"):
            arr = art.tongue_coeffs.get(shot)
            if arr is not None and ch == "tongue_pose":
                arr = np.einsum("fk,kv->fv", arr, art.tongue_shapes.reshape(art.num_tongue_coeffs, -1)) + art.tongue_mean.reshape(1, -1)
                if rescale:
                    t, s = _scale(art, "tongue")
                    arr = ((arr.reshape(len(arr), -1, 3) - t) / s).reshape(len(arr), -1)
        elif ch == "jaw":
            arr = None if art.jaw_anim is None or shot not in art.jaw_anim else art.jaw_anim[shot].reshape(len(art.jaw_anim[shot]), -1)
            if arr is not None and rescale:
                arr = arr / _scale(art, "jaw")[1]
        else:  # eye
            arr = None if art.eye_anim is None or shot not in art.eye_anim else art.eye_anim[shot].reshape(len(art.eye_anim[shot]), -1)
            if arr is not None and rescale:
                arr = arr / _scale(art, "eye")[1]
        if arr is not None and arr.shape[1] != sizes[ch]:
            raise DataError(describe(f"{ch} data of shot {shot}", None, f"{sizes[ch]} values per frame", f"{arr.shape[1]}"))
        parts.append(None if arr is None else np.asarray(arr, np.float32))
    real = [p for p in parts if p is not None]
    if not real:
        raise DataError(describe(shot, None, "at least one real target channel", "none"))
    length = min(len(p) for p in real)
    if any(len(p) != length for p in real):
        log.warning("shot %s: channels have different lengths %s; trimming to %d", shot, [len(p) for p in real], length)
    out = [
        np.zeros((length, sizes[ch]), np.float32) if p is None else p[:length]
        for ch, p in zip(channels, parts)
    ]
    return np.concatenate(out, axis=1)


@dataclasses.dataclass
class TrainingData:
    """Everything a sampler needs: shots (real then muted), clips, targets per shot, emotions."""

    actors: list[str]
    artifacts: dict[str, ActorArtifacts]
    shots: list[Shot]
    clips: list[Clip]
    channels: list[str]
    channel_sizes: dict[str, int]
    explicit_emotions: list[str]
    targets: list[np.ndarray]  # per shot (index as `shots`), [F, D]; muted: the repeated source row
    shot_fps: float

    @property
    def target_dim(self) -> int:
        return int(sum(self.channel_sizes.values()))

    @property
    def num_frames_total(self) -> int:
        return self.shots[-1].start_global + self.shots[-1].length if self.shots else 0

    def shot_index(self, actor: str, name: str) -> int:
        for i, s in enumerate(self.shots):
            if s.actor == actor and s.name == name and not s.muted:
                return i
        raise ConfigError(describe("config_train", "CLIPS", f"a shot of shots.json for actor {actor!r}", repr(name)))

    def emotion_vector(self, shot_index: int) -> np.ndarray:
        return emotion_vector(self.shots[shot_index].emotion, self.explicit_emotions)


def _clip_entries(entries: Sequence[Any], key: str) -> list[tuple]:
    out = []
    for i, e in enumerate(entries or []):
        e = tuple(e)
        if len(e) != 7:
            raise ConfigError(describe("config_train", f"{key}[{i}]", "(actor, shot, (first, last), speaker, lang, audio_rel_path, audio_offset)", repr(e)))
        out.append(e)
    return out


def build_clips(entries: Sequence[Any], data: TrainingData, dataset_cfg: Any, key: str = "CLIPS") -> list[Clip]:
    """Parse `CLIPS` tuples, apply the audio offset clipping rule and check the ranges (docs/training.md "Clips and emotions").

    Every clip's audio gets the checks of scripts/check_dataset.py (`check.clip_audio_problems`: the
    file exists, decodes, and lasts as long as its shot's animation) before training starts; all
    failing clips are listed in one DataError.
    """
    clips, problems = [], []
    checked: dict[tuple[pathlib.Path, int], list[str]] = {}  # several clips may share one audio file
    for i, (actor, shot, rng, speaker, lang, rel, offset) in enumerate(_clip_entries(entries, key)):
        idx = data.shot_index(actor, shot)
        first, last = int(rng[0]), int(rng[1])
        offset = float(offset or 0)
        if offset > 0:
            last -= int(np.ceil(offset))
        elif offset < 0:
            first += int(np.ceil(-offset))
        n = data.shots[idx].length
        if not (0 <= first <= last < n):
            raise ConfigError(describe("config_train", f"{key}[{i}]", f"a frame range inside shot {shot} [0, {n - 1}]", f"({first}, {last}) after offset clipping"))
        root = actor_value(dataset_cfg, "AUDIO_ROOT", actor)
        if root is None:
            raise ConfigError(describe("config_dataset", f"AUDIO_ROOT[{actor!r}]", "the audio folder of the actor", "nothing"))
        audio = pathlib.Path(root) / rel
        if (audio, idx) not in checked:
            checked[audio, idx] = check.clip_audio_problems(audio, n, data.shots[idx].fps)[1]
        problems += [f"{key}[{i}] (shot {shot!r}): {problem}" for problem in checked[audio, idx]]
        clips.append(Clip(actor, shot, first, last, speaker, lang, audio, offset, idx))
    if problems:
        raise DataError(
            f"config_train.{key}: {len(problems)} clip(s) fail the audio checks of scripts/check_dataset.py:\n  "
            + "\n  ".join(problems)
        )
    return clips


def load_training_data(train_cfg: Any, dataset_cfg: Any, actors: Sequence[str] | None = None) -> TrainingData:
    """Shots of every actor (shots.json order), muted shots after them, clips, and per-shot targets."""
    actors = list(actors or dataset_cfg.ACTOR_NAMES)
    channels = list(train_cfg.TARGET_CHANNELS)
    rescale = bool(train_cfg.RESCALE_TARGET_CHANNEL_DATA)
    emotions = list(dataset_cfg.SHOT_EMOTION_NAMES)
    artifacts = {a: load_actor_artifacts(train_cfg, dataset_cfg, a) for a in actors}
    sizes = channel_sizes(channels, artifacts[actors[0]])
    shots: list[Shot] = []
    targets: list[np.ndarray] = []
    start = 0
    fps_values = set()
    for a in actors:
        art = artifacts[a]
        if channel_sizes(channels, art) != sizes:
            raise DataError(describe(f"preproc run of {a}", "data_info", f"channel sizes {sizes}", f"{channel_sizes(channels, art)}"))
        for row in art.shots:
            if len(row) != 5:
                raise DataError(describe("shots.json", None, "rows [actor, shot, len, fps, emotion]", repr(row)))
            s_actor, name, length, fps, emo = row
            if s_actor not in actors:
                raise DataError(describe("shots.json", name, f"an actor of ACTOR_NAMES {actors}", repr(s_actor)))
            if emo not in emotions:
                raise DataError(describe("shots.json", name, f"an emotion of SHOT_EMOTION_NAMES {emotions}", repr(emo)))
            target = shot_target(art, name, channels, rescale)
            length = min(int(length), len(target))
            shots.append(Shot(s_actor, name, length, float(fps), emo, start))
            targets.append(target[:length])
            start += length
            fps_values.add(float(fps))
    data = TrainingData(actors, artifacts, shots, [], channels, sizes, explicit_emotion_names(train_cfg, dataset_cfg), targets, float(min(fps_values)) if fps_values else 30.0)
    # Muted shots: the source frame's target repeated, appended after all real shots (docs/training.md "Targets").
    zero_skin = bool(train_cfg.AUG_MUTED_SKIN_IS_NEUTRAL_FOR_NEUTRAL_EMO)
    zero_tongue = bool(train_cfg.AUG_MUTED_TONGUE_IS_NEUTRAL)
    zero_emotion = train_cfg.SHOT_EMOTION_NAME_FOR_ALL_ZEROS
    offsets = np.cumsum([0] + [sizes[c] for c in channels])
    muted_clips = []
    for i, entry in enumerate(train_cfg.AUG_MUTED_SHOTS):
        actor, (src_shot, src_frame), length, emo = entry
        if emo not in emotions:
            raise ConfigError(describe("config_train", f"AUG_MUTED_SHOTS[{i}]", f"an emotion of SHOT_EMOTION_NAMES {emotions}", repr(emo)))
        src = data.shot_index(actor, src_shot)
        if not 0 <= int(src_frame) < shots[src].length:
            raise ConfigError(describe("config_train", f"AUG_MUTED_SHOTS[{i}]", f"a frame of {src_shot} in [0, {shots[src].length - 1}]", repr(src_frame)))
        row = targets[src][int(src_frame)].copy()
        for ci, ch in enumerate(channels):
            if (ch == "skin_coeffs" and zero_skin and emo == zero_emotion) or (ch == "tongue_coeffs" and zero_tongue):
                row[offsets[ci]:offsets[ci + 1]] = 0.0
        fps = float(actor_value(dataset_cfg, "CACHE_FPS", actor) or data.shot_fps)
        shot = Shot(actor, f"muted_{i}", int(length), fps, emo, start, muted=True, source=(src_shot, int(src_frame)))
        shots.append(shot)
        targets.append(np.repeat(row[None], int(length), axis=0))
        muted_clips.append(Clip(actor, shot.name, 0, int(length) - 1, "muted", "en", None, 0.0, len(shots) - 1, muted=True))
        start += int(length)
    data.clips = build_clips(train_cfg.CLIPS, data, dataset_cfg) + muted_clips
    return data
