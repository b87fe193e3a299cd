"""Check a deploy bundle against what the Audio2Face-3D SDK and Maya-ACE accept (docs/bundle_contract.md).

Every check is a pure function returning a list of `Violation`s (rule, file, expected, found); nothing raises
for a bad bundle. `check_bundle(dir)` runs them all, then (optionally) runs `network.onnx` with onnxruntime
the way the runtime feeds it. Severity "error" breaks a consumer; "warning" deviates from the original's
output without breaking the SDK.
"""

from __future__ import annotations

import json
import math
import pathlib
import zipfile
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from a2f_jax.deploy import contract as C
from a2f_jax.deploy import runtime_feed as rf
from a2f_jax.deploy.onnx_utils import ort_session
from a2f_jax.runs import Bundle


@dataclass(frozen=True)
class Violation:
    rule: str
    file: str
    expected: str
    found: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"[{self.severity}] {self.rule} {self.file}: expected {self.expected}, found {self.found}"


def errors(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity == "error"]


def _v(out: list[Violation], rule: str, file: str, expected: str, found: Any, severity: str = "error") -> None:
    out.append(Violation(rule, file, expected, str(found), severity))


# --------------------------------------------------------------------------------------------------- JSON


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON literal {name}")


def read_json(path: pathlib.Path, out: list[Violation]) -> Any | None:
    """Parse strictly: no BOM, no NaN/Infinity, UTF-8. None (and a violation) when unreadable."""
    name = path.name
    if not path.is_file():
        _v(out, "file.missing", name, "file present", "missing")
        return None
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        _v(out, "json.bom", name, "no UTF-8 byte-order mark", "BOM")
        raw = raw[3:]
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        _v(out, "json.parse", name, "strict JSON (no NaN/Infinity)", exc)
        return None


def _type_ok(value: Any, kind: str) -> bool:
    is_num = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)  # noqa: E731
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return is_num(value)
    if kind == "str":
        return isinstance(value, str)
    if kind == "str_list":
        return isinstance(value, list) and all(isinstance(x, str) for x in value)
    if kind == "float_list":
        return isinstance(value, list) and all(is_num(x) for x in value)
    raise KeyError(kind)


def _check_keys(obj: Any, spec: Mapping[str, str], file: str, prefix: str, out: list[Violation]) -> None:
    if not isinstance(obj, dict):
        _v(out, "json.type", file, f"object at {prefix or 'top level'}", type(obj).__name__)
        return
    for key, kind in spec.items():
        if key not in obj:
            _v(out, "json.missing_key", file, f"key {prefix}{key}", "missing")
        elif not _type_ok(obj[key], kind):
            _v(out, "json.type", file, f"{prefix}{key} of type {kind}", repr(obj[key])[:80])


def _names_ok(names: Any, what: str, file: str, out: list[Violation]) -> None:
    for n in names if isinstance(names, list) else []:
        if isinstance(n, str) and (not C.IDENTIFIER_RE.match(n) or ".." in n):
            _v(out, "name.identifier", file, f"{what} matching {C.IDENTIFIER_RE.pattern}", repr(n))


def check_network_info(info: Any, file: str = Bundle.NETWORK_INFO) -> list[Violation]:
    out: list[Violation] = []
    if not isinstance(info, dict):
        _v(out, "json.type", file, "object", type(info).__name__)
        return out
    _check_keys(info.get("id"), C.NETWORK_INFO_ID, file, "id.", out)
    kind = info.get("id", {}).get("type") if isinstance(info.get("id"), dict) else None
    if kind not in C.NETWORK_TYPES:
        _v(out, "network_info.type", file, f"id.type in {C.NETWORK_TYPES}", repr(kind))
        return out
    if info["id"].get("output") != "geometry":
        _v(out, "network_info.output", file, 'id.output == "geometry"', repr(info["id"].get("output")))
    if "version" in info["id"] and not isinstance(info["id"]["version"], str):
        _v(out, "json.type", file, "id.version of type str", repr(info["id"]["version"]))
    _check_keys(info.get("params"), C.NETWORK_INFO_PARAMS[kind], file, "params.", out)
    _check_keys(info.get("audio_params"), C.NETWORK_INFO_AUDIO[kind], file, "audio_params.", out)
    if out:
        return out  # the consistency checks below need well-typed fields
    p, a = info["params"], info["audio_params"]
    emotions = C.network_emotions(info)
    if len(emotions) != len(p["default_emotion"]):
        _v(out, "emotion.length", file, f"len(default_emotion) == {len(emotions)} (emotion names)", len(p["default_emotion"]))
    if len(set(emotions)) != len(emotions):
        _v(out, "emotion.names", file, "distinct emotion names", emotions)
    _names_ok(emotions, "emotion names", file, out)
    _names_ok(p["identities"], "identities", file, out)
    if not p["identities"]:
        _v(out, "network_info.identities", file, "at least one identity", "[]")
    if a["samplerate"] != C.SAMPLERATE:
        _v(out, "audio.samplerate", file, f"audio_params.samplerate == {C.SAMPLERATE}", a["samplerate"])
    positive = [k for k, t in C.NETWORK_INFO_PARAMS[kind].items() if t == "int"]
    for key in positive:
        if p[key] < 0 or (p[key] == 0 and key not in ("num_shapes_tongue", "num_verts_tongue", "tongue_size")):
            _v(out, "network_info.range", file, f"params.{key} > 0", p[key])
    if kind == "regression":
        if len(p["identities"]) != 1:
            _v(out, "network_info.identities", file, "exactly one identity (regression is single-actor)", p["identities"])
        if a["buffer_len"] != C.REGRESSION_BUFFER_LEN:
            _v(out, "audio.buffer_len", file, f"audio_params.buffer_len == {C.REGRESSION_BUFFER_LEN}", a["buffer_len"])
        if a["buffer_ofs"] * 2 != a["buffer_len"]:
            _v(out, "audio.buffer_ofs", file, "buffer_ofs == buffer_len / 2 (window centred on the frame)", a["buffer_ofs"])
        if p["result_eyes_size"] != C.EYES_SIZE:
            _v(out, "network_info.eyes", file, f"params.result_eyes_size == {C.EYES_SIZE}", p["result_eyes_size"])
        if p["result_jaw_size"] % 3:
            _v(out, "network_info.jaw", file, "params.result_jaw_size divisible by 3", p["result_jaw_size"])
    else:
        frames = p["num_frames_left_truncate"] + p["num_frames_center"] + p["num_frames_right_truncate"]
        if frames <= 0 or (frames * a["samplerate"]) % a["buffer_len"] or (a["buffer_len"] * p["num_frames_center"]) % frames:
            _v(out, "audio.stream", file, "integer fps and hop from left+center+right and buffer_len", (frames, a["buffer_len"]))
        if p["eyes_size"] != C.EYES_SIZE:
            _v(out, "network_info.eyes", file, f"params.eyes_size == {C.EYES_SIZE}", p["eyes_size"])
        if p["skin_size"] % 3 or p["tongue_size"] % 3 or p["jaw_size"] % 3:
            _v(out, "network_info.sizes", file, "skin/tongue/jaw sizes divisible by 3", (p["skin_size"], p["tongue_size"], p["jaw_size"]))
    return out


def check_model_json(model: Any, kind: str, num_identities: int, root: pathlib.Path, file: str = Bundle.MODEL_JSON) -> list[Violation]:
    out: list[Violation] = []
    if not isinstance(model, dict):
        _v(out, "json.type", file, "object", type(model).__name__)
        return out
    for key in C.MODEL_JSON_KEYS[kind]:
        if key not in model:
            _v(out, "json.missing_key", file, f"key {key}", "missing")
    if out:
        return out
    if model["networkInfoPath"] != Bundle.NETWORK_INFO:
        _v(out, "model_json.path", file, f'networkInfoPath "{Bundle.NETWORK_INFO}"', repr(model["networkInfoPath"]))
    net = model["networkPath"]
    if not isinstance(net, str) or not net.endswith(".trt"):
        _v(out, "model_json.network_path", file, "networkPath ending in .trt (engine built from network.onnx)", repr(net))
    elif not (root / (net[: -len(".trt")] + ".onnx")).is_file():
        _v(out, "file.missing", file, f"{net[:-4]}.onnx beside model.json (the TRT engine is built from it)", "missing")
    paths: list[str] = []
    if kind == "regression":
        for key in ("modelConfigPath", "modelDataPath", "emotionDatabasePath"):
            if not isinstance(model[key], str):
                _v(out, "json.type", file, f"{key} of type str", repr(model[key]))
            else:
                paths.append(model[key])
        if isinstance(model.get("emotionDatabasePath"), str) and not model["emotionDatabasePath"].endswith(".npz"):
            _v(out, "model_json.emo_db", file, "emotionDatabasePath with extension .npz", model["emotionDatabasePath"])
    else:
        for key in ("modelConfigPaths", "modelDataPaths"):
            val = model[key]
            if not _type_ok(val, "str_list"):
                _v(out, "json.type", file, f"{key} of type str_list", repr(val))
                continue
            if len(val) != num_identities:
                _v(out, "model_json.lengths", file, f"len({key}) == {num_identities} (identities)", len(val))
            paths.extend(val)
    for rel in paths:
        if not (root / rel).is_file():
            _v(out, "file.missing", file, f"referenced file {rel}", "missing")
    if "blendshapePaths" in model:
        bs = model["blendshapePaths"]
        entries = [bs] if kind == "regression" else bs
        if kind == "regression" and not isinstance(bs, dict):
            _v(out, "json.type", file, "blendshapePaths object (regression)", type(bs).__name__)
        elif kind == "diffusion" and not (isinstance(bs, list) and len(bs) == num_identities):
            _v(out, "model_json.lengths", file, f"blendshapePaths list of {num_identities} objects", repr(bs)[:80])
        else:
            for entry in entries:
                if not isinstance(entry, dict):
                    _v(out, "json.type", file, "blendshapePaths entry object", type(entry).__name__)
                    continue
                if entry and set(entry) != {"skin", "tongue"}:
                    _v(out, "model_json.blendshapes", file, "blendshape entry with both skin and tongue (else geometry only)",
                       sorted(entry), "warning")
                for part, files in entry.items():
                    if not (isinstance(files, dict) and {"config", "data"} <= set(files)):
                        _v(out, "model_json.blendshapes", file, f"blendshapePaths {part} with config and data", repr(files))
                        continue
                    for rel in (files["config"], files["data"]):
                        if not (root / rel).is_file():
                            _v(out, "file.missing", file, f"referenced file {rel}", "missing")
    return out


def check_model_config(cfg: Any, kind: str, file: str) -> list[Violation]:
    out: list[Violation] = []
    if not (isinstance(cfg, dict) and isinstance(cfg.get("config"), dict)):
        _v(out, "json.missing_key", file, 'top-level object {"config": {...}}', repr(cfg)[:80])
        return out
    c = cfg["config"]
    for key, rng in C.MODEL_CONFIG_RANGES.items():
        if key not in c:
            _v(out, "json.missing_key", file, f"key config.{key}", "missing")
            continue
        val = c[key]
        if key in C.MODEL_CONFIG_INT_KEYS and not _type_ok(val, "int"):
            _v(out, "json.type", file, f"config.{key} an integer JSON number", repr(val))
            continue
        if not _type_ok(val, "float"):
            _v(out, "json.type", file, f"config.{key} a finite number", repr(val))
            continue
        if rng is not None and not (rng[0] <= val <= rng[1]):
            _v(out, "model_config.range", file, f"config.{key} in [{rng[0]}, {rng[1]}]", val)
    if kind == "regression":
        if not isinstance(c.get("source_shot"), str):
            _v(out, "model_config.source", file, "config.source_shot a shot name (string)", repr(c.get("source_shot")))
        sf = c.get("source_frame")
        if not (_type_ok(sf, "int") and sf >= 0):
            _v(out, "model_config.source", file, "config.source_frame a non-negative integer", repr(sf))
    expected_order = list(C.MODEL_CONFIG_KEYS) + (list(C.REGRESSION_SOURCE_KEYS) if kind == "regression" else [])
    if [k for k in c if k in expected_order] != [k for k in expected_order if k in c]:
        _v(out, "model_config.order", file, "keys in the original's order", list(c), "warning")
    extra = [k for k in c if k not in expected_order]
    if extra:
        _v(out, "model_config.extra", file, "only the original's keys", extra, "warning")
    return out


# ---------------------------------------------------------------------------------------------------- NPZ


@dataclass(frozen=True)
class NpzEntry:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool
    compressed: bool


def npz_entries(path: pathlib.Path) -> list[NpzEntry]:
    """Header facts of every array in an npz archive, in stored order, without loading the payload."""
    entries = []
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = reader(f)
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            entries.append(NpzEntry(name, dtype, tuple(shape), bool(fortran), info.compress_type != zipfile.ZIP_STORED))
    return entries


def _npz_encoding(
    path: pathlib.Path, out: list[Violation], int_keys: tuple[str, ...] = (), str_keys: tuple[str, ...] = ()
) -> list[NpzEntry] | None:
    name = path.name
    if not path.is_file():
        _v(out, "file.missing", name, "file present", "missing")
        return None
    if path.suffix != ".npz":
        _v(out, "npz.extension", name, "extension .npz", path.suffix)
    try:
        entries = npz_entries(path)
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        _v(out, "npz.read", name, "an np.savez archive", exc)
        return None
    for e in entries:
        if e.compressed:
            _v(out, "npz.compressed", name, f"{e.name} stored uncompressed (plain np.savez)", "compressed")
        if e.fortran_order and len(e.shape) > 1:
            _v(out, "npz.order", name, f"{e.name} C-order", "fortran_order=True")
        if e.name in str_keys:
            if e.dtype.kind != "S":
                _v(out, "npz.dtype", name, f"{e.name} byte strings (dtype S)", e.dtype.str)
        elif e.name in int_keys:
            if e.dtype != np.dtype("<i4"):
                _v(out, "npz.dtype", name, f"{e.name} int32 little-endian", e.dtype.str)
        elif e.dtype != np.dtype("<f4"):
            _v(out, "npz.dtype", name, f"{e.name} float32 little-endian", e.dtype.str)
    return entries


def check_model_data(path: pathlib.Path, info: Mapping[str, Any]) -> list[Violation]:
    out: list[Violation] = []
    entries = _npz_encoding(path, out)
    if entries is None:
        return out
    name, kind, p = path.name, info["id"]["type"], info["params"]
    by_name = {e.name: e for e in entries}
    for key in C.MODEL_DATA_REQUIRED[kind]:
        if key not in by_name:
            _v(out, "npz.missing_key", name, f"array {key}", "missing")
    known = [e.name for e in entries if e.name in C.MODEL_DATA_KEYS]
    if known != [k for k in C.MODEL_DATA_KEYS if k in by_name]:
        _v(out, "npz.key_order", name, f"keys in order {list(C.MODEL_DATA_KEYS)}", known, "warning")
    unknown = [e.name for e in entries if e.name not in C.MODEL_DATA_KEYS]
    if unknown:
        _v(out, "npz.extra_key", name, "only the keys of network_data.npz", unknown, "warning")
    if out and any(v.severity == "error" for v in out):
        return out
    size = lambda k: int(np.prod(by_name[k].shape)) if k in by_name else None  # noqa: E731
    if kind == "regression":
        vs, vt, ks, kt = 3 * p["num_verts_skin"], 3 * p["num_verts_tongue"], p["num_shapes_skin"], p["num_shapes_tongue"]
        jaw = p["result_jaw_size"]
        expect = {
            "shapes_matrix_skin": vs * ks, "shapes_mean_skin": vs, "lip_open_pose_delta": vs, "eye_close_pose_delta": vs,
            "shapes_matrix_tongue": vt * kt, "shapes_mean_tongue": vt, "neutral_skin": vs, "neutral_tongue": vt,
        }
        neutral_key = "shapes_mean_skin"
    else:
        vs, vt, jaw = p["skin_size"], p["tongue_size"], p["jaw_size"]
        expect = {"neutral_skin": vs, "lip_open_pose_delta": vs, "eye_close_pose_delta": vs, "neutral_tongue": vt,
                  "shapes_mean_skin": vs, "shapes_mean_tongue": vt}
        neutral_key = "neutral_skin"
    for key, n in expect.items():
        if key in by_name and size(key) != n:
            _v(out, "npz.size", name, f"{key} with {n} values (network_info)", f"{size(key)} {by_name[key].shape}")
    if size("neutral_jaw") != jaw:
        _v(out, "npz.size", name, f"neutral_jaw with {jaw} values (= jaw size in network_info)", size("neutral_jaw"))
    sac = by_name["saccade_rot_matrix"].shape
    if len(sac) != 2 or sac[1] != 2 or sac[0] < 1:
        _v(out, "npz.shape", name, "saccade_rot_matrix [N>=1, 2]", sac)
    with np.load(path) as z:
        for key in z.files:
            arr = z[key]
            if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                _v(out, "npz.finite", name, f"{key} finite", "NaN/Inf")
        if neutral_key in z.files and z[neutral_key].size % 3 == 0 and z[neutral_key].size:
            y = z[neutral_key].reshape(-1, 3)[:, 1]
            if not float(y.max() - y.min()) > 0:
                _v(out, "npz.neutral_y", name, f"{neutral_key} with a positive Y range (face mask)", float(y.max() - y.min()))
    return out


def check_emo_db(path: pathlib.Path, implicit_len: int) -> list[Violation]:
    out: list[Violation] = []
    entries = _npz_encoding(path, out, int_keys=("emo_spec_start", "emo_spec_size"), str_keys=("emo_spec_names",))
    if entries is None:
        return out
    name = path.name
    by_name = {e.name: e for e in entries}
    for key in C.EMO_DB_KEYS:
        if key not in by_name:
            _v(out, "npz.missing_key", name, f"array {key}", "missing")
    if errors(out):
        return out
    with np.load(path) as z:
        db, names, start, size = z["emo_db"], z["emo_spec_names"], z["emo_spec_start"], z["emo_spec_size"]
    if db.ndim != 2 or db.shape[1] != implicit_len:
        _v(out, "emotion.length", name, f"emo_db [frames, {implicit_len}] (implicit_emotion_len)", db.shape)
    if not (names.ndim == start.ndim == size.ndim == 1 and len(names) == len(start) == len(size) and len(names) > 0):
        _v(out, "emo_db.specs", name, "emo_spec_names/start/size 1-D, equal non-zero lengths", (names.shape, start.shape, size.shape))
        return out
    if np.any(np.diff(start) < 0):
        _v(out, "emo_db.sorted", name, "emo_spec_start ascending", start.tolist()[:10])
    if np.any(start < 0) or np.any(size <= 0) or np.any(start + size > db.shape[0]):
        _v(out, "emo_db.range", name, f"0 <= start, size > 0, start + size <= {db.shape[0]}", list(zip(start.tolist(), size.tolist()))[:5])
    try:
        decoded = [n.decode("ascii") for n in names]
    except UnicodeDecodeError as exc:
        _v(out, "emo_db.names", name, "ASCII shot names", exc)
        return out
    if len(set(decoded)) != len(decoded):
        _v(out, "emo_db.names", name, "distinct shot names", decoded)
    if not np.all(np.isfinite(db)):
        _v(out, "npz.finite", name, "emo_db finite", "NaN/Inf")
    return out


def emo_db_specs(path: pathlib.Path) -> dict[str, tuple[int, int]]:
    """shot name -> (start, size) of an implicit_emo_db.npz, in stored order."""
    with np.load(path) as z:
        return {n.decode(): (int(s), int(k)) for n, s, k in zip(z["emo_spec_names"], z["emo_spec_start"], z["emo_spec_size"])}


def check_bs_files(root: pathlib.Path, npz_rel: str, config_rel: str) -> list[Violation]:
    """Blendshape npz + config (copied from the dataset; checked because the SDK solve reads them)."""
    out: list[Violation] = []
    entries = _npz_encoding(root / npz_rel, out, int_keys=("frontalMask",), str_keys=("poseNames", "rig_version"))
    cfg = read_json(root / config_rel, out)
    if entries is None or cfg is None:
        return out
    with np.load(root / npz_rel) as z:
        if "poseNames" not in z.files:
            _v(out, "npz.missing_key", npz_rel, "array poseNames", "missing")
            return out
        poses = [n.decode() if isinstance(n, bytes) else str(n) for n in z["poseNames"].tolist()]
        if not poses or poses[0] != "neutral":
            _v(out, "bs.pose_names", npz_rel, 'poseNames[0] == "neutral"', poses[:3])
        sizes = {p: z[p].size for p in poses if p in z.files}
        missing = [p for p in poses if p not in z.files]
        if missing:
            _v(out, "npz.missing_key", npz_rel, "one array per pose name", missing[:5])
        if sizes and len(set(sizes.values())) != 1:
            _v(out, "bs.sizes", npz_rel, "every pose array the size of neutral", sorted(set(sizes.values())))
    params = cfg.get("blendshape_params") if isinstance(cfg, dict) else None
    if not isinstance(params, dict):
        _v(out, "json.missing_key", config_rel, "key blendshape_params", "missing")
        return out
    for key in C.BLENDSHAPE_PARAM_KEYS + C.BLENDSHAPE_POSE_ARRAYS:
        if key not in params:
            _v(out, "json.missing_key", config_rel, f"key blendshape_params.{key}", "missing")
    num = params.get("numPoses")
    for key in C.BLENDSHAPE_POSE_ARRAYS:
        if key in params and (not isinstance(params[key], list) or len(params[key]) != num):
            found = len(params[key]) if isinstance(params[key], list) else params[key]
            _v(out, "bs.lengths", config_rel, f"{key} of length numPoses={num}", found)
    return out


def check_trt_info(trt: Any, info: Mapping[str, Any], file: str = Bundle.TRT_INFO) -> list[Violation]:
    out: list[Violation] = []
    batch = trt.get("trt_build_param", {}).get("batch") if isinstance(trt, dict) and isinstance(trt.get("trt_build_param"), dict) else None
    if not _type_ok(batch, "str_list"):
        _v(out, "json.missing_key", file, "trt_build_param.batch list of strings", repr(batch)[:80])
        return out
    kind = info["id"]["type"]
    shapes = C.onnx_tensor_shapes(info)
    inputs = [n for n, (role, _) in C.ONNX_IO[kind].items() if role == "input"]
    flags = {}
    for arg in batch:
        flag, _, spec = arg.partition("=")
        flags[flag] = spec
    for flag, batch_value in (("--minShapes", "1"), ("--maxShapes", "{MAX_BATCH_SIZE}"), ("--optShapes", "{OPT_BATCH_SIZE}")):
        if flag not in flags:
            _v(out, "trt_info.batch", file, f"a {flag}= entry", sorted(flags))
            continue
        parsed = dict(part.split(":", 1) for part in flags[flag].split(",") if ":" in part)
        if sorted(parsed) != sorted(inputs):
            _v(out, "trt_info.names", file, f"{flag} over exactly the inputs {inputs}", sorted(parsed))
            continue
        for n in inputs:
            want = "x".join(batch_value if d == "B" else str(d) for d in shapes[n])
            if parsed[n] != want:
                _v(out, "trt_info.shape", file, f"{flag} {n}:{want}", f"{n}:{parsed[n]}")
    if any("{" in arg for arg in batch) and "defaults" not in trt:
        _v(out, "trt_info.defaults", file, "a defaults {MAX_BATCH_SIZE, OPT_BATCH_SIZE} entry (SDK trt.py needs it)", "missing",
           "warning" if kind == "regression" else "error")
    return out


# --------------------------------------------------------------------------------------------------- ONNX


def check_onnx_contract(path: pathlib.Path, info: Mapping[str, Any]) -> list[Violation]:
    """Tensor names, roles, ranks, float32, batch-only dynamic dims, self-contained file (docs/bundle_contract.md "ONNX tensors")."""
    import onnx  # heavy optional dependency: only the ONNX checks need it

    out: list[Violation] = []
    name = path.name
    if not path.is_file():
        _v(out, "file.missing", name, "file present", "missing")
        return out
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf errors have no common base class
        _v(out, "onnx.read", name, "a readable ONNX model", exc)
        return out
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        _v(out, "onnx.external_data", name, "weights inside network.onnx (no sidecar files)", "external data")
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    if opsets.get("ai.onnx") != C.ONNX_OPSET:
        _v(out, "onnx.opset", name, f"opset {C.ONNX_OPSET} (as the original)", opsets, "warning")
    kind = info["id"]["type"]
    expected = C.onnx_tensor_shapes(info)
    found = {t.name: ("input", t) for t in model.graph.input}
    init_names = {t.name for t in model.graph.initializer}
    found = {n: v for n, v in found.items() if n not in init_names}
    found.update({t.name: ("output", t) for t in model.graph.output})
    if sorted(found) != sorted(expected):
        _v(out, "onnx.names", name, f"exactly the tensors {sorted(expected)}", sorted(found))
    for tname, shape in expected.items():
        if tname not in found:
            continue
        role, t = found[tname]
        want_role, batch_axis = C.ONNX_IO[kind][tname]
        if role != want_role:
            _v(out, "onnx.role", name, f"{tname} an {want_role}", role)
        tt = t.type.tensor_type
        if tt.elem_type != onnx.TensorProto.FLOAT:
            _v(out, "onnx.dtype", name, f"{tname} float32", onnx.TensorProto.DataType.Name(tt.elem_type))
        dims = list(tt.shape.dim)
        if len(dims) != len(shape):
            _v(out, "onnx.rank", name, f"{tname} of rank {len(shape)} {shape}", len(dims))
            continue
        for axis, (d, want) in enumerate(zip(dims, shape)):
            static = d.HasField("dim_value")
            if axis == batch_axis:
                if static and d.dim_value != 1:
                    _v(out, "onnx.batch", name, f"{tname} dim {axis} dynamic (batch)", d.dim_value)
            elif not static:
                _v(out, "onnx.static", name, f"{tname} dim {axis} static = {want}", d.dim_param or "?")
            elif d.dim_value != want:
                _v(out, "onnx.shape", name, f"{tname} dim {axis} = {want}", d.dim_value)
    return out


def check_onnx_run(
    root: pathlib.Path, info: Mapping[str, Any], model_cfg: Mapping[str, Any] | None, seconds: float = 1.0, seed: int = 0
) -> list[Violation]:
    """Run network.onnx with onnxruntime as the runtime feeds it, on a synthetic clip; check shapes, finiteness
    and that batch rows are independent (same window in two batch slots gives the same result)."""
    out: list[Violation] = []
    name = Bundle.NETWORK_ONNX
    rng = np.random.default_rng(seed)
    samples = int(seconds * C.SAMPLERATE)
    t = np.arange(samples) / C.SAMPLERATE
    speech_like = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    audio = (speech_like + 0.01 * rng.standard_normal(samples)).astype(np.float32)
    try:
        run = rf.ort_runner(ort_session(root / name))
    except Exception as exc:  # onnxruntime raises its own exception types
        _v(out, "onnx.session", name, "an onnxruntime CPU session", exc)
        return out
    kind, p = info["id"]["type"], info["params"]
    strength = float(model_cfg["config"]["input_strength"]) if model_cfg else 1.0
    try:
        if kind == "regression":
            implicit = np.zeros(p["implicit_emotion_len"], np.float32)
            emo_path = root / Bundle.EMO_DB
            if model_cfg and emo_path.is_file():
                specs = emo_db_specs(emo_path)
                shot, frame = model_cfg["config"].get("source_shot"), model_cfg["config"].get("source_frame")
                if shot in specs and isinstance(frame, int) and 0 <= frame < specs[shot][1]:  # else reported by check_bundle
                    with np.load(emo_path) as z:
                        implicit = z["emo_db"][specs[shot][0] + frame]
            emotion = np.concatenate([implicit, np.asarray(p["default_emotion"], np.float32)])
            fps = 30.0
            rows = rf.run_regression(run, audio, emotion, fps=fps, input_strength=strength,
                                     buffer_len=info["audio_params"]["buffer_len"], buffer_ofs=info["audio_params"]["buffer_ofs"], batch=8)
            want = (rf.regression_num_frames(samples, fps), C.regression_result_dim(p))
            if rows.shape != want:
                _v(out, "onnx.run_shape", name, f"result rows {want} for {seconds} s at {fps} fps", rows.shape)
            if not np.all(np.isfinite(rows)):
                _v(out, "onnx.run_finite", name, "finite result", "NaN/Inf")
            win = rf.regression_windows(audio, fps)[len(rows) // 2][None, None]
            pair = run({"input": np.concatenate([win, 0.5 * win[..., ::-1] + 0.1]), "emotion": np.stack([emotion, emotion])[:, None]})["result"]
            single = run({"input": win, "emotion": emotion[None, None]})["result"]
            if not np.allclose(pair[0], single[0], atol=1e-4, rtol=1e-4):
                _v(out, "onnx.batch_rows", name, "batch rows independent (|row0(B=2) - row0(B=1)| <= 1e-4)",
                   float(np.abs(pair[0] - single[0]).max()))
        else:
            stream = rf.DiffusionStream.from_network_info(info)
            noise = rng.standard_normal((stream.steps + 1, stream.frames, stream.out_dim)).astype(np.float32)
            identity = np.eye(stream.num_identities, dtype=np.float32)[0]
            frames = rf.run_diffusion(run, audio, stream, identity, np.asarray(p["default_emotion"], np.float32), noise, strength)
            want = (int(round(seconds * stream.fps)), stream.out_dim)
            if frames.shape != want:
                _v(out, "onnx.run_shape", name, f"frames {want} for {seconds} s at {stream.fps:g} fps", frames.shape)
            if not np.all(np.isfinite(frames)):
                _v(out, "onnx.run_finite", name, "finite prediction", "NaN/Inf")
            win = rf.window_at(audio, 0, stream.buffer_len)[None]
            feeds1 = {"window": win, "identity": identity[None], "emotion": np.zeros((1, stream.center, stream.num_emotions), np.float32),
                      "input_latents": stream.zero_latents(1), "noise": noise[None]}
            other = lambda v: 0.5 * v[..., ::-1] + 0.1  # noqa: E731  a different second row
            feeds2 = {k: np.ascontiguousarray(np.concatenate([v, other(v)], axis=2 if k == "input_latents" else 0)) for k, v in feeds1.items()}
            one, two = run(feeds1), run(feeds2)
            if two["output_latents"].shape != (stream.steps, stream.gru_layers, 2, stream.latent_dim):
                _v(out, "onnx.run_shape", name, "output_latents [S, L, 2, 256] for batch 2", two["output_latents"].shape)
            elif not (np.allclose(two["prediction"][0], one["prediction"][0], atol=1e-4, rtol=1e-4)
                      and np.allclose(two["output_latents"][:, :, 0], one["output_latents"][:, :, 0], atol=1e-4, rtol=1e-4)):
                _v(out, "onnx.batch_rows", name, "batch rows independent (batch at dim 0, latents at dim 2)", "row 0 differs")
    except Exception as exc:  # any onnxruntime failure while feeding the contract shapes is the finding
        _v(out, "onnx.run", name, "onnxruntime accepts the runtime's feeds", f"{type(exc).__name__}: {exc}"[:300])
    return out


# ------------------------------------------------------------------------------------------------- bundle


def check_bundle(root: str | pathlib.Path, run_onnx: bool = True) -> list[Violation]:
    """All checks of a bundle directory; optionally run the network with onnxruntime."""
    root = pathlib.Path(root)
    out: list[Violation] = []
    if not root.is_dir():
        _v(out, "bundle.dir", str(root), "a bundle directory", "missing")
        return out
    info = read_json(root / Bundle.NETWORK_INFO, out)
    if info is None:
        return out
    info_violations = check_network_info(info)
    out += info_violations
    if errors(info_violations):
        return out
    kind, p = info["id"]["type"], info["params"]
    model = read_json(root / Bundle.MODEL_JSON, out)
    if model is not None:
        out += check_model_json(model, kind, len(p["identities"]), root)
    readme = root / Bundle.README
    if not readme.is_file() or not readme.read_text().startswith(C.readme_text(kind, len(p["identities"]))):
        _v(out, "readme", Bundle.README, repr(C.readme_text(kind, len(p["identities"]))), "missing or different", "warning")
    cfgs: list[Any] = []
    for actor in p["identities"]:
        cfg_name, data_name = Bundle.model_config_name(kind, actor), Bundle.model_data_name(kind, actor)
        cfg = read_json(root / cfg_name, out)
        cfgs.append(cfg)
        if cfg is not None:
            out += check_model_config(cfg, kind, cfg_name)
        out += check_model_data(root / data_name, info)
    if kind == "regression":
        emo_path = root / Bundle.EMO_DB
        emo_violations = check_emo_db(emo_path, p["implicit_emotion_len"])
        out += emo_violations
        cfg = cfgs[0] if cfgs else None
        if not errors(emo_violations) and isinstance(cfg, dict) and isinstance(cfg.get("config"), dict):
            specs = emo_db_specs(emo_path)
            shot, frame = cfg["config"].get("source_shot"), cfg["config"].get("source_frame")
            if isinstance(shot, str) and shot not in specs:
                _v(out, "model_config.source", Bundle.model_config_name(kind, ""), f"source_shot one of the emo DB shots {list(specs)[:5]}", repr(shot))
            elif isinstance(shot, str) and _type_ok(frame, "int") and not 0 <= frame < specs[shot][1]:
                _v(out, "model_config.source", Bundle.model_config_name(kind, ""), f"0 <= source_frame < {specs[shot][1]} (shot size)", frame)
    if isinstance(model, dict) and model.get("blendshapePaths"):
        entries = model["blendshapePaths"] if isinstance(model["blendshapePaths"], list) else [model["blendshapePaths"]]
        for entry in entries:
            for files in (entry.values() if isinstance(entry, dict) else []):
                if isinstance(files, dict) and (root / str(files.get("data"))).is_file() and (root / str(files.get("config"))).is_file():
                    out += check_bs_files(root, files["data"], files["config"])
    trt = read_json(root / Bundle.TRT_INFO, out)
    if trt is not None:
        out += check_trt_info(trt, info)
    onnx_violations = check_onnx_contract(root / Bundle.NETWORK_ONNX, info)
    out += onnx_violations
    if run_onnx and not errors(onnx_violations):
        out += check_onnx_run(root, info, cfgs[0] if cfgs and isinstance(cfgs[0], dict) else None)
    return out


def format_report(violations: list[Violation]) -> str:
    if not violations:
        return "bundle OK: no violations"
    lines = [f"{len(errors(violations))} error(s), {len(violations) - len(errors(violations))} warning(s)"]
    lines += [f"  {v.severity:7s} {v.rule:24s} {v.file}: expected {v.expected}; found {v.found}" for v in violations]
    return "\n".join(lines)
