"""The Audio2Face-3D NIM messages (packages `nvidia_audio2face_3d`, `nvidia_ace`) ↔ `serve.session` types.

Requests (`AudioWithEmotionStream`): one `audio_stream_header`, then `audio_with_emotion` chunks, then
`end_of_audio`. Responses (`A2F3DAnimationDataStream`): one `animation_data_stream_header` (audio header echoed,
skin blendshape names, joints), one `animation_data` per frame, an `event` END_OF_A2F_AUDIO_PROCESSING and a
`status` SUCCESS; a refused stream gets a `status` ERROR with the reason before the gRPC status.

Joints: "jaw" (the lower-teeth rigid transform of the post-processing: rotation + translation), "right_eye",
"left_eye" (rotation from the eye angles, degrees: q = q_y(yaw) · q_x(pitch); zero translation); scales 1.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

import numpy as np
from nvidia_ace import animation_pb2, audio_pb2, status_pb2
from nvidia_audio2face_3d import messages_pb2

from a2f_jax.serve.session import JOINTS, Frame, StreamSettings, invalid

PCM = audio_pb2.AudioHeader.AUDIO_FORMAT_PCM


def settings_from_header(header: messages_pb2.AudioWithEmotionStreamHeader) -> StreamSettings:
    """Check the audio header (16-bit mono PCM at a positive rate) and collect the parameters."""
    if not header.HasField("audio_header"):
        raise invalid("audio_stream_header.audio_header is missing")
    a = header.audio_header
    if a.audio_format != PCM:
        raise invalid(f"audio_header.audio_format must be AUDIO_FORMAT_PCM, got {a.audio_format}")
    if a.bits_per_sample != 16:
        raise invalid(f"audio_header.bits_per_sample must be 16, got {a.bits_per_sample}")
    if a.channel_count != 1:
        raise invalid(f"audio_header.channel_count must be 1 (mono), got {a.channel_count}")
    if a.samples_per_second <= 0:
        raise invalid(f"audio_header.samples_per_second must be a positive sample rate, got {a.samples_per_second}")
    fp = header.face_params
    if fp.float_array_params:
        raise invalid(f"face_params.float_array_params are not supported, got {sorted(fp.float_array_params)}")
    face = {**{k: float(v) for k, v in fp.integer_params.items()}, **{k: float(v) for k, v in fp.float_params.items()}}
    b = header.blendshape_params
    return StreamSettings(sample_rate=int(a.samples_per_second), face_params=face,
                          bs_multipliers=dict(b.bs_weight_multipliers), bs_offsets=dict(b.bs_weight_offsets),
                          clamp=bool(b.enable_clamping_bs_weight), emotion=dict(header.emotion_params.beginning_emotion))


def emotion_keyframes(chunk: messages_pb2.AudioWithEmotion) -> list[tuple[float, dict[str, float]]]:
    return [(float(e.time_code), dict(e.emotion)) for e in chunk.emotions]


def header_response(audio_header: audio_pb2.AudioHeader, pose_names: Iterable[str]) -> messages_pb2.A2F3DAnimationDataStream:
    head = messages_pb2.A2F3DAnimationDataStreamHeader(
        audio_header=audio_header,
        skel_animation_header=animation_pb2.SkelAnimationHeader(blend_shapes=list(pose_names), joints=list(JOINTS)),
        start_time_code_since_epoch=time.time())
    return messages_pb2.A2F3DAnimationDataStream(animation_data_stream_header=head)


def quat_from_matrix(r: np.ndarray) -> tuple[float, float, float, float]:
    """(real, i, j, k) of a 3x3 rotation matrix (largest-component branch, unit length)."""
    m = np.asarray(r, np.float64)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = (0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s)
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = ((m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s)
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = ((m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s)
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = ((m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s)
    q = np.asarray(q)
    q = q / np.linalg.norm(q)
    return tuple(float(v) for v in (q if q[0] >= 0 else -q))


def quat_from_eye(x_deg: float, y_deg: float) -> tuple[float, float, float, float]:
    """q_y(y) · q_x(x): pitch about X, then yaw about Y (degrees)."""
    hx, hy = np.radians(x_deg) / 2.0, np.radians(y_deg) / 2.0
    cx, sx, cy, sy = np.cos(hx), np.sin(hx), np.cos(hy), np.sin(hy)
    return float(cy * cx), float(cy * sx), float(sy * cx), float(-sy * sx)


def frame_response(frame: Frame) -> messages_pb2.A2F3DAnimationDataStream:
    t = frame.time
    jaw = np.asarray(frame.jaw, np.float64).reshape(4, 4).T  # column-major -> [row][col]
    rot = [quat_from_matrix(jaw[:3, :3]), quat_from_eye(frame.eyes[0], frame.eyes[1]),
           quat_from_eye(frame.eyes[3], frame.eyes[4])]
    trans = [tuple(float(v) for v in jaw[:3, 3]), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)]
    skel = animation_pb2.SkelAnimation(
        blend_shape_weights=[animation_pb2.FloatArrayWithTimeCode(time_code=t, values=frame.weights.tolist())],
        translations=[animation_pb2.Float3ArrayWithTimeCode(
            time_code=t, values=[animation_pb2.Float3(x=a, y=b, z=c) for a, b, c in trans])],
        rotations=[animation_pb2.QuatFArrayWithTimeCode(
            time_code=t, values=[animation_pb2.QuatF(real=w, i=i, j=j, k=k) for w, i, j, k in rot])],
        scales=[animation_pb2.Float3ArrayWithTimeCode(
            time_code=t, values=[animation_pb2.Float3(x=1.0, y=1.0, z=1.0) for _ in JOINTS])])
    data = animation_pb2.AnimationData(
        skel_animation=skel, audio=animation_pb2.AudioWithTimeCode(time_code=frame.audio_time, audio_buffer=frame.audio))
    return messages_pb2.A2F3DAnimationDataStream(animation_data=data)


def end_event() -> messages_pb2.A2F3DAnimationDataStream:
    return messages_pb2.A2F3DAnimationDataStream(event=messages_pb2.Event(event_type=messages_pb2.END_OF_A2F_AUDIO_PROCESSING))


def status_response(ok: bool, message: str) -> messages_pb2.A2F3DAnimationDataStream:
    code = status_pb2.Status.SUCCESS if ok else status_pb2.Status.ERROR
    return messages_pb2.A2F3DAnimationDataStream(status=status_pb2.Status(code=code, message=message))


def request_kind(msg: Any) -> str | None:
    """"audio_stream_header", "audio_with_emotion", "end_of_audio" or None (an empty message)."""
    return msg.WhichOneof("stream_part")
