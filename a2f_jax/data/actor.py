"""One actor's dataset files (config_dataset keys), with the original's defaults for what is absent.

`ActorSettings.from_configs` reads the actor's entries of the dataset (and preproc) config once, at the
edge; `ActorData.load` and the emotion lookups take those typed settings, never a config. Per-actor config
values are dicts keyed by actor name; a missing actor or None means "not provided". Defaults (see
docs/dataset_format.md): lip-open and eye-close deltas are zeros [V, 3]; jaw neutral, blink keys and
saccades are zeros of the preproc config's DEFAULT_*_SHAPE. Vertex lists, the tongue and the jaw/eye
animation stay None when absent (training then uses placeholders or skips losses).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import zipfile
import zlib
from typing import Any, Mapping, Sequence

import numpy as np

from a2f_jax.config import preproc as preproc_base
from a2f_jax.data import caches
from a2f_jax.errors import ConfigError, DataError, describe

# A shot whose name holds no emotion name (and that SHOT_EMOTION_MAP does not list) is this emotion.
FALLBACK_EMOTION = "neutral"

# The per-actor file and folder keys of config_dataset that ActorData reads.
ACTOR_FILE_KEYS = (
    "AUDIO_ROOT", "SKIN_CACHE_ROOT", "SKIN_NEUTRAL_FPATH", "SKIN_LIP_OPEN_POSE_DELTA_FPATH",
    "SKIN_EYE_CLOSE_POSE_DELTA_FPATH", "SKIN_LIP_DIST_VERTEX_LIST_FPATH", "SKIN_LIP_SIZE_VERTEX_LIST_FPATH",
    "SKIN_EYE_DIST_VERTEX_LIST_FPATH", "TONGUE_CACHE_ROOT", "TONGUE_NEUTRAL_FPATH", "TONGUE_RIGID_VERTEX_LIST_FPATH",
    "JAW_KEYPOINTS_NEUTRAL_FPATH", "JAW_ANIM_DATA_FPATH", "EYE_ANIM_DATA_FPATH", "EYE_BLINK_KEYS_FPATH",
    "EYE_SACCADE_ROTATIONS_FPATH", "BLENDSHAPE_SKIN_FPATH", "BLENDSHAPE_SKIN_CONFIG_FPATH", "BLENDSHAPE_TONGUE_FPATH",
    "BLENDSHAPE_TONGUE_CONFIG_FPATH",
)
# What a dataset check still reads when the other files fail to load (the caches and the audio).
CORE_FILE_KEYS = ("AUDIO_ROOT", "SKIN_CACHE_ROOT")


def actor_value(cfg: Any, key: str, actor: str) -> Any:
    """`cfg[key].get(actor)`: the actor's entry of a per-actor config dict (None: the actor has none)."""
    table = cfg[key]
    if table is None:
        return None
    if not hasattr(table, "get"):
        raise ConfigError(describe(f"config_dataset.{key}", None, "a dict keyed by actor name", type(table).__name__))
    return table.get(actor)


@dataclasses.dataclass(frozen=True)
class ShotEmotions:
    """How shots map to emotions: config_dataset's SHOT_EMOTION_NAMES and SHOT_EMOTION_MAP."""

    names: tuple[str, ...]
    # (actor, shot, emotion) entries as configured (checked when looked up, so a dataset check lists them all)
    overrides: tuple[Any, ...]

    @classmethod
    def from_configs(cls, dataset: Any) -> "ShotEmotions":
        """From config_dataset (map entries may be tuples or lists: configs arrive through JSON)."""
        return cls(tuple(dataset["SHOT_EMOTION_NAMES"]), tuple(dataset["SHOT_EMOTION_MAP"] or ()))


@dataclasses.dataclass(frozen=True)
class ActorSettings:
    """Everything `ActorData.load` needs to know about one actor from the configs."""

    actor: str
    files: Mapping[str, str]  # ACTOR_FILE_KEYS the actor has an entry for -> the configured path
    emotions: ShotEmotions
    skin_cache_shots: tuple[str, ...]  # preproc SKIN_CACHE_SHOTS[actor]; empty: every shot of the cache
    tongue_cache_shots: tuple[str, ...]  # preproc TONGUE_CACHE_SHOTS[actor]; likewise
    # Shapes of the zeros used for absent files (preproc DEFAULT_*_SHAPE).
    jaw_keypoints_shape: tuple[int, ...]
    eye_blink_keys_shape: tuple[int, ...]
    eye_saccade_rot_shape: tuple[int, ...]

    @classmethod
    def from_configs(cls, dataset: Any, actor: str, preproc: Any = None) -> "ActorSettings":
        """From config_dataset and config_preproc (None: the preproc base)."""
        preproc = preproc_base.base_dict() if preproc is None else preproc
        files = {key: actor_value(dataset, key, actor) for key in ACTOR_FILE_KEYS}
        return cls(
            actor=actor,
            files={key: str(value) for key, value in files.items() if value is not None},
            emotions=ShotEmotions.from_configs(dataset),
            skin_cache_shots=tuple(actor_value(preproc, "SKIN_CACHE_SHOTS", actor) or ()),
            tongue_cache_shots=tuple(actor_value(preproc, "TONGUE_CACHE_SHOTS", actor) or ()),
            jaw_keypoints_shape=tuple(int(n) for n in preproc["DEFAULT_JAW_KEYPOINTS_SHAPE"]),
            eye_blink_keys_shape=tuple(int(n) for n in preproc["DEFAULT_EYE_BLINK_KEYS_SHAPE"]),
            eye_saccade_rot_shape=tuple(int(n) for n in preproc["DEFAULT_EYE_SACCADE_ROT_SHAPE"]),
        )

    def core_only(self) -> "ActorSettings":
        """These settings with only the skin caches and the audio (CORE_FILE_KEYS)."""
        return dataclasses.replace(self, files={k: v for k, v in self.files.items() if k in CORE_FILE_KEYS})


# ----------------------------------------------------------------------------------------------
# Emotions
# ----------------------------------------------------------------------------------------------


def shot_emotion(emotions: ShotEmotions, actor: str, shot: str) -> str:
    """The shot's SHOT_EMOTION_MAP entry, else the first SHOT_EMOTION_NAMES substring of its name, else
    FALLBACK_EMOTION (docs/dataset_format.md). An emotion named by SHOT_EMOTION_MAP must be in
    SHOT_EMOTION_NAMES (ConfigError otherwise)."""
    names = list(emotions.names)
    for entry in emotions.overrides:
        if len(entry) != 3:
            raise ConfigError(
                describe("config_dataset.SHOT_EMOTION_MAP", None, "(actor, shot, emotion) entries", repr(entry))
            )
        map_actor, map_shot, emotion = entry
        if map_actor == actor and map_shot == shot:
            if emotion not in names:
                raise ConfigError(
                    describe(
                        "config_dataset.SHOT_EMOTION_MAP",
                        f"({actor!r}, {shot!r})",
                        f"an emotion from SHOT_EMOTION_NAMES {names}",
                        repr(emotion),
                    )
                )
            return emotion
    for name in names:
        if name in shot:
            return name
    return FALLBACK_EMOTION


def check_emotion_known(emotions: ShotEmotions, actor: str, shot: str) -> str:
    """shot_emotion, but also reject the fallback when it is not a known emotion."""
    emotion = shot_emotion(emotions, actor, shot)
    names = list(emotions.names)
    if emotion not in names:
        raise ConfigError(
            describe(
                f"shot {shot!r} of actor {actor!r}",
                "emotion",
                f"a name from SHOT_EMOTION_NAMES {names} in the shot name, or a SHOT_EMOTION_MAP entry",
                f"none (fallback {emotion!r} is not in the list)",
            )
        )
    return emotion


# ----------------------------------------------------------------------------------------------
# Readers with precise errors
# ----------------------------------------------------------------------------------------------


def _exists(path: Any, key: str, actor: str) -> pathlib.Path:
    path = pathlib.Path(os.path.expandvars(str(path)))
    if not path.exists():
        what = "an existing folder" if key.endswith("_ROOT") else "an existing file"
        raise DataError(describe(path, f"{key}[{actor}]", what, "no such file or folder"))
    return path


def load_array(path: pathlib.Path, shape: Sequence[int | None] | None = None) -> np.ndarray:
    """A .npy (no pickles, size checked against its header) with the shape checked; None in `shape`
    matches any size."""
    array = caches.load_npy(path)
    if shape is not None:
        ok = array.ndim == len(shape) and all(want is None or want == got for want, got in zip(shape, array.shape))
        if not ok:
            want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
            raise DataError(describe(path, "shape", want, str(list(array.shape))))
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise DataError(describe(path, None, "finite values", "NaN/Inf"))
    return array


def load_npz(path: pathlib.Path) -> dict[str, np.ndarray]:
    """A plain .npz: every .npy member's header is checked against the member's size (np.load ignores
    trailing bytes), no pickles; zip damage (bad CRC, truncation) becomes a DataError."""
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.filename.endswith(".npy"):
                    with zf.open(info) as f:
                        caches.parse_npy_header(f, info.file_size, f"{path} member {info.filename}")
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except DataError:
        raise
    except (ValueError, OSError, EOFError, MemoryError, NotImplementedError, RuntimeError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError(describe(path, None, "a readable .npz archive of plain arrays", f"{type(err).__name__}: {err}")) from err


def load_json(path: pathlib.Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, RecursionError) as err:
        raise DataError(describe(path, None, "JSON", f"{type(err).__name__}: {err}")) from err


def _int_list(value: Any, path: pathlib.Path, field: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise DataError(describe(path, field, "a list of vertex indices (ints)", repr(value)[:80]))
    return list(value)


def parse_vertex_lists(obj: Any, path: pathlib.Path, kind: str) -> dict:
    """Validate the structure of lip_dist / eye_dist ({"upper", "lower"}) or lip_size lists."""
    if kind in ("lip_dist", "eye_dist"):
        if not isinstance(obj, dict) or not {"upper", "lower"} <= set(obj):
            raise DataError(describe(path, None, '{"upper": [...], "lower": [...]}', repr(obj)[:80]))
        upper, lower = _int_list(obj["upper"], path, "upper"), _int_list(obj["lower"], path, "lower")
        if len(upper) != len(lower):
            raise DataError(describe(path, "upper/lower", "lists of equal length (paired)", f"{len(upper)} and {len(lower)}"))
        if kind == "eye_dist" and len(lower) < 2:
            raise DataError(describe(path, "lower", "at least 2 vertices (one per eye)", f"{len(lower)}"))
        return {"upper": upper, "lower": lower}
    # lip_size
    out: dict = {}
    for lip in ("upper_lip", "lower_lip"):
        part = obj.get(lip) if isinstance(obj, dict) else None
        if not isinstance(part, dict):
            raise DataError(describe(path, lip, '{"top": [...], "bottom": [...]}', repr(part)[:80]))
        top, bottom = _int_list(part.get("top"), path, f"{lip}.top"), _int_list(part.get("bottom"), path, f"{lip}.bottom")
        if len(top) != len(bottom):
            raise DataError(describe(path, f"{lip}.top/bottom", "lists of equal length", f"{len(top)} and {len(bottom)}"))
        out[lip] = {"top": top, "bottom": bottom}
    return out


def vertex_indices(lists: Any) -> list[int]:
    """Every int inside a (nested) vertex-list structure."""
    if isinstance(lists, dict):
        return [i for value in lists.values() for i in vertex_indices(value)]
    if isinstance(lists, (list, tuple)):
        return [i for value in lists for i in vertex_indices(value)]
    return [int(lists)]


def check_indices_in_range(indices: Sequence[int], num_verts: int, source: Any, field: str | None = None) -> None:
    """DataError naming the first index outside [0, num_verts)."""
    bad = [i for i in indices if not 0 <= i < num_verts]
    if bad:
        raise DataError(
            describe(source, field, f"vertex indices in [0, {num_verts})", f"{len(bad)} out of range, e.g. {bad[0]}")
        )


def check_vertex_count(array: np.ndarray, num_verts: int, source: Any, axis: int = -2, what: str = "vertices") -> None:
    if array.shape[axis] != num_verts:
        raise DataError(describe(source, what, f"{num_verts} vertices", f"{array.shape[axis]} (shape {list(array.shape)})"))


# ----------------------------------------------------------------------------------------------
# ActorData
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ActorData:
    """Everything the dataset config provides for one actor, loaded and validated.

    Arrays are as stored (f32 in the original's datasets). `*_fpath` fields keep where each came from
    (None = default used). `num_skin_verts` comes from the skin neutral, or from the first skin cache.
    """

    actor: str
    num_skin_verts: int
    skin_neutral: np.ndarray | None  # [V, 3]
    lip_open_pose_delta: np.ndarray  # [V, 3], zeros if absent
    eye_close_pose_delta: np.ndarray  # [V, 3], zeros if absent
    lip_dist_verts: dict | None  # {"upper": [...], "lower": [...]}
    lip_size_verts: dict | None  # {"upper_lip": {"top", "bottom"}, "lower_lip": {...}}
    eye_dist_verts: dict | None  # {"upper": [...], "lower": [...]}
    tongue_neutral: np.ndarray | None  # [Vt, 3]
    tongue_rigid_verts: list[int] | None
    jaw_keypoints_neutral: np.ndarray  # [N, 3], zeros (5, 3) if absent
    jaw_anim: dict[str, np.ndarray] | None  # shot -> [T, N, 3] deltas
    eye_anim: dict[str, np.ndarray] | None  # shot -> [T, 2, 2] degrees
    eye_blink_keys: np.ndarray  # [n], zeros (10,) if absent
    eye_saccade_rotations: np.ndarray  # [n, 2], zeros (5000, 2) if absent
    blendshapes_skin: dict[str, np.ndarray] | None
    blendshapes_skin_config: dict | None
    blendshapes_tongue: dict[str, np.ndarray] | None
    blendshapes_tongue_config: dict | None
    paths: dict[str, pathlib.Path | None]
    settings: ActorSettings

    @property
    def has_tongue(self) -> bool:
        """Tongue preproc runs only with cache root, neutral and rigid list all present (docs/preproc_artifacts.md "Tongue")."""
        return self.tongue_neutral is not None and self.tongue_rigid_verts is not None and self.paths.get("TONGUE_CACHE_ROOT") is not None

    @classmethod
    def load(cls, settings: ActorSettings) -> "ActorData":
        actor = settings.actor
        paths: dict[str, pathlib.Path | None] = {}

        def path_of(key: str) -> pathlib.Path | None:
            value = settings.files.get(key)
            paths[key] = None if value is None else _exists(value, key, actor)
            return paths[key]

        jaw_shape = settings.jaw_keypoints_shape
        blink_shape = settings.eye_blink_keys_shape
        saccade_shape = settings.eye_saccade_rot_shape

        skin_root = path_of("SKIN_CACHE_ROOT")
        audio_root = settings.files.get("AUDIO_ROOT")
        paths["AUDIO_ROOT"] = None if audio_root is None else pathlib.Path(os.path.expandvars(str(audio_root)))

        neutral_path = path_of("SKIN_NEUTRAL_FPATH")
        skin_neutral = load_array(neutral_path, (None, 3)) if neutral_path else None
        if skin_neutral is not None:
            num_verts = int(skin_neutral.shape[0])
        elif skin_root is not None:
            shots = caches.list_shots(skin_root)
            if not shots:
                raise DataError(describe(skin_root, f"SKIN_CACHE_ROOT[{actor}]", "at least one shot", "an empty folder"))
            num_verts = caches.cache_num_verts(caches.find_cache_file(skin_root, shots[0]))
        else:
            raise ConfigError(describe("config_dataset.SKIN_CACHE_ROOT", actor, "a skin cache folder for the actor", "none"))

        def delta(key: str) -> np.ndarray:
            p = path_of(key)
            return load_array(p, (num_verts, 3)) if p else np.zeros((num_verts, 3), np.float32)

        def vertex_list(key: str, kind: str) -> dict | None:
            p = path_of(key)
            if p is None:
                return None
            lists = parse_vertex_lists(load_json(p), p, kind)
            check_indices_in_range(vertex_indices(lists), num_verts, p)
            return lists

        lip_open = delta("SKIN_LIP_OPEN_POSE_DELTA_FPATH")
        eye_close = delta("SKIN_EYE_CLOSE_POSE_DELTA_FPATH")
        lip_dist = vertex_list("SKIN_LIP_DIST_VERTEX_LIST_FPATH", "lip_dist")
        lip_size = vertex_list("SKIN_LIP_SIZE_VERTEX_LIST_FPATH", "lip_size")
        eye_dist = vertex_list("SKIN_EYE_DIST_VERTEX_LIST_FPATH", "eye_dist")

        path_of("TONGUE_CACHE_ROOT")
        p = path_of("TONGUE_NEUTRAL_FPATH")
        tongue_neutral = load_array(p, (None, 3)) if p else None
        p = path_of("TONGUE_RIGID_VERTEX_LIST_FPATH")
        rigid = None
        if p is not None:
            rigid = _int_list(load_json(p), p, None)
            if len(rigid) < 4:
                raise DataError(describe(p, None, "at least 4 rigid vertex indices", f"{len(rigid)}"))
            if tongue_neutral is not None:
                check_indices_in_range(rigid, tongue_neutral.shape[0], p)

        p = path_of("JAW_KEYPOINTS_NEUTRAL_FPATH")
        jaw_neutral = load_array(p, (None, 3)) if p else np.zeros(jaw_shape, np.float32)
        p = path_of("JAW_ANIM_DATA_FPATH")
        jaw_anim = load_npz(p) if p else None
        if jaw_anim is not None:
            for shot, arr in jaw_anim.items():
                if arr.ndim != 3 or arr.shape[1:] != jaw_neutral.shape:
                    raise DataError(describe(p, shot, f"[T, {jaw_neutral.shape[0]}, 3] keypoint deltas", str(list(arr.shape))))
        p = path_of("EYE_ANIM_DATA_FPATH")
        eye_anim = load_npz(p) if p else None
        if eye_anim is not None:
            for shot, arr in eye_anim.items():
                if arr.ndim != 3 or arr.shape[1:] != (2, 2):
                    raise DataError(describe(p, shot, "[T, 2, 2] eye rotations", str(list(arr.shape))))
        p = path_of("EYE_BLINK_KEYS_FPATH")
        blink = load_array(p, (None,)) if p else np.zeros(blink_shape, np.float32)
        p = path_of("EYE_SACCADE_ROTATIONS_FPATH")
        saccade = load_array(p, (None, 2)) if p else np.zeros(saccade_shape, np.float32)

        def blendshapes(key: str, config_key: str, num: int | None) -> tuple[dict | None, dict | None]:
            p, pc = path_of(key), path_of(config_key)
            data = load_npz(p) if p else None
            if data is not None and num is not None and "neutral" in data:
                check_vertex_count(data["neutral"], num, p, what="neutral")
            config = load_json(pc) if pc else None
            if config is not None and not isinstance(config.get("blendshape_params") if isinstance(config, dict) else None, dict):
                raise DataError(describe(pc, "blendshape_params", "an object", repr(config)[:80]))
            return data, config

        bs_skin, bs_skin_cfg = blendshapes("BLENDSHAPE_SKIN_FPATH", "BLENDSHAPE_SKIN_CONFIG_FPATH", num_verts)
        num_tongue = None if tongue_neutral is None else int(tongue_neutral.shape[0])
        bs_tongue, bs_tongue_cfg = blendshapes("BLENDSHAPE_TONGUE_FPATH", "BLENDSHAPE_TONGUE_CONFIG_FPATH", num_tongue)

        return cls(
            actor=actor,
            num_skin_verts=num_verts,
            skin_neutral=skin_neutral,
            lip_open_pose_delta=lip_open,
            eye_close_pose_delta=eye_close,
            lip_dist_verts=lip_dist,
            lip_size_verts=lip_size,
            eye_dist_verts=eye_dist,
            tongue_neutral=tongue_neutral,
            tongue_rigid_verts=rigid,
            jaw_keypoints_neutral=jaw_neutral,
            jaw_anim=jaw_anim,
            eye_anim=eye_anim,
            eye_blink_keys=blink,
            eye_saccade_rotations=saccade,
            blendshapes_skin=bs_skin,
            blendshapes_skin_config=bs_skin_cfg,
            blendshapes_tongue=bs_tongue,
            blendshapes_tongue_config=bs_tongue_cfg,
            paths=paths,
            settings=settings,
        )

    def skin_shots(self) -> list[str]:
        """SKIN_CACHE_SHOTS[actor] if configured, else every entry of the skin cache root."""
        chosen = self.settings.skin_cache_shots
        root = self.paths.get("SKIN_CACHE_ROOT")
        if chosen:
            return list(chosen)
        return caches.list_shots(root) if root is not None else []

    def tongue_shots(self) -> list[str]:
        chosen = self.settings.tongue_cache_shots
        root = self.paths.get("TONGUE_CACHE_ROOT")
        if chosen:
            return list(chosen)
        return caches.list_shots(root) if root is not None else []

