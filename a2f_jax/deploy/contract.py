"""The deploy-bundle contract read by the Audio2Face-3D SDK and Maya-ACE (docs/bundle_contract.md).

Pure data and small derivations: JSON keys and types, model_config ranges, npz key lists, ONNX tensor
shapes and TensorRT shape strings (the bundle's file names are `a2f_jax.runs.Bundle`'s). The writer
(`deploy.bundle`) and the checker (`deploy.check`) both read from here, so they cannot disagree.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from a2f_jax.config.inference_regression import postprocess_config

NETWORK_TYPES = ("regression", "diffusion")

# FW `validate_identifier`: actor / shot / emotion / run names.
IDENTIFIER_RE = re.compile(r"^[\w]([\w.-]*[\w])?$", re.ASCII)

# model_config keys in the order the original writes them, with the SDK's accepted range
# (None: the SDK does no range check at load). Values outside a range make executor creation fail.
MODEL_CONFIG_RANGES: dict[str, tuple[float, float] | None] = {
    "input_strength": None,
    "upper_face_smoothing": (0.0, 0.1),
    "lower_face_smoothing": (0.0, 0.1),
    "upper_face_strength": (0.0, 2.0),
    "lower_face_strength": (0.0, 2.0),
    "face_mask_level": (0.0, 1.0),
    "face_mask_softness": (0.001, 0.5),
    "skin_strength": (0.0, 2.0),
    "blink_strength": (0.0, 2.0),
    "lower_teeth_strength": (0.0, 2.0),
    "lower_teeth_height_offset": (-3.0, 3.0),
    "lower_teeth_depth_offset": (-3.0, 3.0),
    "lip_open_offset": (-0.2, 0.2),
    "tongue_strength": (0.0, 3.0),
    "tongue_height_offset": (-3.0, 3.0),
    "tongue_depth_offset": (-3.0, 3.0),
    "eyeballs_strength": (0.0, 2.0),
    "saccade_strength": (0.0, 2.0),
    "right_eye_rot_x_offset": (-10.0, 10.0),
    "right_eye_rot_y_offset": (-10.0, 10.0),
    "left_eye_rot_x_offset": (-10.0, 10.0),
    "left_eye_rot_y_offset": (-10.0, 10.0),
    "eyelid_open_offset": (-1.0, 1.0),
    "eye_saccade_seed": (0.0, 4999.0),
}
MODEL_CONFIG_KEYS = tuple(MODEL_CONFIG_RANGES)
MODEL_CONFIG_INT_KEYS = ("eye_saccade_seed",)
REGRESSION_SOURCE_KEYS = ("source_shot", "source_frame")

# FW base defaults (config_inference_{regression,diffusion}_base.CONFIG); the two differ in upper_face_smoothing.
DEFAULT_MODEL_CONFIG: dict[str, Any] = postprocess_config(upper_face_smoothing=0.001)

# model_data npz (= preproc deploy/network_data.npz): canonical key order, and what each network type needs.
MODEL_DATA_KEYS = (
    "shapes_matrix_skin",
    "shapes_mean_skin",
    "neutral_skin",
    "lip_open_pose_delta",
    "eye_close_pose_delta",
    "shapes_matrix_tongue",
    "shapes_mean_tongue",
    "neutral_tongue",
    "neutral_jaw",
    "blink_keys",
    "saccade_rot_matrix",
)
MODEL_DATA_REQUIRED = {
    "regression": (
        "shapes_matrix_skin",
        "shapes_mean_skin",
        "lip_open_pose_delta",
        "eye_close_pose_delta",
        "shapes_matrix_tongue",
        "shapes_mean_tongue",
        "neutral_jaw",
        "saccade_rot_matrix",
    ),
    "diffusion": (
        "neutral_skin",
        "lip_open_pose_delta",
        "eye_close_pose_delta",
        "neutral_tongue",
        "neutral_jaw",
        "saccade_rot_matrix",
    ),
}

EMO_DB_KEYS = ("emo_db", "emo_spec_names", "emo_spec_start", "emo_spec_size")

# network_info.json: key -> JSON type ("int", "float", "str", "str_list", "float_list").
NETWORK_INFO_ID = {"type": "str", "actor": "str", "output": "str"}
NETWORK_INFO_PARAMS = {
    "regression": {
        "implicit_emotion_len": "int",
        "explicit_emotions": "str_list",
        "default_emotion": "float_list",
        "identities": "str_list",
        "num_shapes_skin": "int",
        "num_verts_skin": "int",
        "num_shapes_tongue": "int",
        "num_verts_tongue": "int",
        "result_jaw_size": "int",
        "result_eyes_size": "int",
    },
    "diffusion": {
        "emotions": "str_list",
        "default_emotion": "float_list",
        "identities": "str_list",
        "skin_size": "int",
        "tongue_size": "int",
        "jaw_size": "int",
        "eyes_size": "int",
        "num_diffusion_steps": "int",
        "num_gru_layers": "int",
        "gru_latent_dim": "int",
        "num_frames_left_truncate": "int",
        "num_frames_right_truncate": "int",
        "num_frames_center": "int",
    },
}
NETWORK_INFO_AUDIO = {
    "regression": {"buffer_len": "int", "buffer_ofs": "int", "samplerate": "int"},
    "diffusion": {"buffer_len": "int", "padding_left": "int", "padding_right": "int", "samplerate": "int"},
}
SAMPLERATE = 16000
REGRESSION_BUFFER_LEN = 8320  # 24 hops of 320 + one 640-sample autocorrelation window
EYES_SIZE = 4  # [right_x, right_y, left_x, left_y]

MODEL_JSON_KEYS = {
    "regression": ("networkInfoPath", "networkPath", "modelConfigPath", "modelDataPath", "emotionDatabasePath"),
    "diffusion": ("networkInfoPath", "networkPath", "modelConfigPaths", "modelDataPaths"),
}

BLENDSHAPE_PARAM_KEYS = (
    "strengthL1regularization",
    "strengthL2regularization",
    "strengthTemporalSmoothing",
    "strengthSymmetry",
    "numPoses",
)
BLENDSHAPE_POSE_ARRAYS = (
    "bsSolveActivePoses",
    "bsSolveCancelPoses",
    "bsSolveSymmetryPoses",
    "bsWeightMultipliers",
    "bsWeightOffsets",
)

# ONNX I/O: name -> (role, index of the batch axis). Ranks and static dims come from `onnx_tensor_shapes`.
ONNX_IO = {
    "regression": {"input": ("input", 0), "emotion": ("input", 0), "result": ("output", 0)},
    "diffusion": {
        "window": ("input", 0),
        "identity": ("input", 0),
        "emotion": ("input", 0),
        "input_latents": ("input", 2),
        "noise": ("input", 0),
        "prediction": ("output", 0),
        "output_latents": ("output", 2),
    },
}
ONNX_OPSET = 14


def network_emotions(network_info: Mapping[str, Any]) -> list[str]:
    params = network_info["params"]
    return list(params["explicit_emotions"] if network_info["id"]["type"] == "regression" else params["emotions"])


def diffusion_output_dim(params: Mapping[str, Any]) -> int:
    """D = 3V_s + 3V_t + jaw + eyes."""
    return int(params["skin_size"] + params["tongue_size"] + params["jaw_size"] + params["eyes_size"])


def regression_result_dim(params: Mapping[str, Any]) -> int:
    """K_s + K_t + jaw + eyes."""
    return int(
        params["num_shapes_skin"] + params["num_shapes_tongue"] + params["result_jaw_size"] + params["result_eyes_size"]
    )


def onnx_tensor_shapes(network_info: Mapping[str, Any]) -> dict[str, tuple[int | str, ...]]:
    """Expected ONNX tensor shapes for a network_info dict; the batch axis is the string "B"."""
    kind = network_info["id"]["type"]
    p = network_info["params"]
    audio = network_info["audio_params"]
    if kind == "regression":
        emo_len = int(p["implicit_emotion_len"]) + len(p["explicit_emotions"])
        return {
            "input": ("B", 1, int(audio["buffer_len"])),
            "emotion": ("B", 1, emo_len),
            "result": ("B", 1, regression_result_dim(p)),
        }
    if kind == "diffusion":
        s, layers, latent = int(p["num_diffusion_steps"]), int(p["num_gru_layers"]), int(p["gru_latent_dim"])
        frames = int(p["num_frames_left_truncate"]) + int(p["num_frames_center"]) + int(p["num_frames_right_truncate"])
        d = diffusion_output_dim(p)
        return {
            "window": ("B", int(audio["buffer_len"])),
            "identity": ("B", len(p["identities"])),
            "emotion": ("B", int(p["num_frames_center"]), len(p["emotions"])),
            "input_latents": (s, layers, "B", latent),
            "noise": ("B", s + 1, frames, d),
            "prediction": ("B", frames, d),
            "output_latents": (s, layers, "B", latent),
        }
    raise ValueError(f"network_info.json [id.type]: expected one of {NETWORK_TYPES}, found {kind!r}")


def _shape_arg(shapes: Mapping[str, tuple], names: tuple[str, ...], batch: str) -> str:
    return ",".join(f"{n}:" + "x".join(batch if d == "B" else str(d) for d in shapes[n]) for n in names)


def trt_info(network_info: Mapping[str, Any]) -> dict[str, Any]:
    """trt_info.json as the original writes it, plus `defaults` for regression too (docs/bundle_contract.md "trt_info.json")."""
    kind = network_info["id"]["type"]
    shapes = onnx_tensor_shapes(network_info)
    names = tuple(n for n, (role, _) in ONNX_IO[kind].items() if role == "input")
    batch = [
        "--minShapes=" + _shape_arg(shapes, names, "1"),
        "--maxShapes=" + _shape_arg(shapes, names, "{MAX_BATCH_SIZE}"),
        "--optShapes=" + _shape_arg(shapes, names, "{OPT_BATCH_SIZE}"),
    ]
    info: dict[str, Any] = {}
    if kind == "diffusion":
        info["estimated_trt_builder_time"] = 150
    info["trt_build_param"] = {"cuda_in_graphics": ["--memPoolSize=tacticSharedMem:0.046875"], "batch": batch}
    info["defaults"] = {"MAX_BATCH_SIZE": 8, "OPT_BATCH_SIZE": 3}
    return info


def readme_text(network_type: str, num_actors: int) -> str:
    """The bundle README's exact first line, as the original writes it (no trailing newline there)."""
    multi = "Multi-Actor " if num_actors > 1 else ""
    return f"# Audio2Face {multi}{'Diffusion' if network_type == 'diffusion' else 'Regression'} Model"


def regression_network_info(
    actor: str, emotions: list[str], default_emotion: list[float], num_shapes_skin: int, num_verts_skin: int,
    num_shapes_tongue: int, num_verts_tongue: int, jaw_size: int = 15, version: str = "2.3", implicit_emotion_len: int = 16,
) -> dict[str, Any]:
    """The deploy network_info.json of a regression network (FW `train_regression.compose_network_info`)."""
    return {
        "id": {"type": "regression", "actor": actor, "version": version, "output": "geometry"},
        "params": {
            "implicit_emotion_len": implicit_emotion_len,
            "explicit_emotions": list(emotions),
            "default_emotion": [float(x) for x in default_emotion],
            "identities": [actor],
            "num_shapes_skin": num_shapes_skin,
            "num_verts_skin": num_verts_skin,
            "num_shapes_tongue": num_shapes_tongue,
            "num_verts_tongue": num_verts_tongue,
            "result_jaw_size": jaw_size,
            "result_eyes_size": EYES_SIZE,
        },
        "audio_params": {"buffer_len": REGRESSION_BUFFER_LEN, "buffer_ofs": REGRESSION_BUFFER_LEN // 2, "samplerate": SAMPLERATE},
    }


def diffusion_network_info(
    identities: list[str], emotions: list[str], default_emotion: list[float], num_verts_skin: int, num_verts_tongue: int,
    jaw_size: int = 15, num_diffusion_steps: int = 2, num_gru_layers: int = 2, gru_latent_dim: int = 256,
    left: int = 15, center: int = 30, right: int = 15, version: str = "3.1",
) -> dict[str, Any]:
    """The deploy network_info.json of a diffusion network (FW `train_diffusion.compose_network_info`)."""
    return {
        "id": {"type": "diffusion", "actor": identities[0] if len(identities) == 1 else "multi", "version": version, "output": "geometry"},
        "params": {
            "emotions": list(emotions),
            "default_emotion": [float(x) for x in default_emotion],
            "identities": list(identities),
            "skin_size": 3 * num_verts_skin,
            "tongue_size": 3 * num_verts_tongue,
            "jaw_size": jaw_size,
            "eyes_size": EYES_SIZE,
            "num_diffusion_steps": num_diffusion_steps,
            "num_gru_layers": num_gru_layers,
            "gru_latent_dim": gru_latent_dim,
            "num_frames_left_truncate": left,
            "num_frames_right_truncate": right,
            "num_frames_center": center,
        },
        "audio_params": {"buffer_len": 16000, "padding_left": 16000, "padding_right": 16000, "samplerate": SAMPLERATE},
    }
