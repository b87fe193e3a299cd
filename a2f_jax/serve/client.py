"""A plain client of the A2FControllerService (`scripts/stream_client.py`, the tests and the load benchmark).

`stream_pcm` sends the header, the audio in chunks (paced to real time unless `realtime=False`) and EndOfAudio,
and collects what comes back: blendshape names, per-frame weights with time codes, joint transforms, the echoed
audio, the final status, and when each chunk was sent and each frame arrived (for latency figures).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Mapping, Sequence

import grpc
import numpy as np
from nvidia_ace import audio_pb2, status_pb2
from nvidia_audio2face_3d import audio2face_pb2_grpc, messages_pb2

from a2f_jax.io_utils import atomic_write_text


@dataclasses.dataclass
class StreamResult:
    pose_names: list[str]
    joints: list[str]
    times: np.ndarray  # [T] frame time codes (s)
    weights: np.ndarray  # [T, P]
    rotations: np.ndarray  # [T, J, 4] (real, i, j, k)
    translations: np.ndarray  # [T, J, 3]
    audio: bytes  # the echoed PCM, all frames
    status: str  # the final Status message
    events: int
    sent_at: list[tuple[int, float]]  # (samples sent so far, perf_counter time) after each chunk
    received_at: np.ndarray  # [T] perf_counter time each frame arrived
    started: float
    finished: float


def header_message(sample_rate: int, emotion: Mapping[str, float] | None = None, face: Mapping[str, float] | None = None,
                   multipliers: Mapping[str, float] | None = None, offsets: Mapping[str, float] | None = None,
                   clamp: bool = False, channels: int = 1, bits: int = 16,
                   audio_format: int = audio_pb2.AudioHeader.AUDIO_FORMAT_PCM) -> messages_pb2.AudioWithEmotionStream:
    head = messages_pb2.AudioWithEmotionStreamHeader(
        audio_header=audio_pb2.AudioHeader(audio_format=audio_format, channel_count=channels,
                                           samples_per_second=sample_rate, bits_per_sample=bits),
        face_params=messages_pb2.FaceParameters(float_params=dict(face or {})),
        blendshape_params=messages_pb2.BlendShapeParameters(bs_weight_multipliers=dict(multipliers or {}),
                                                            bs_weight_offsets=dict(offsets or {}),
                                                            enable_clamping_bs_weight=clamp),
        emotion_params=messages_pb2.EmotionParameters(beginning_emotion=dict(emotion or {})))
    return messages_pb2.AudioWithEmotionStream(audio_stream_header=head)


def audio_message(pcm: bytes, emotions: Sequence[tuple[float, Mapping[str, float]]] = ()) -> messages_pb2.AudioWithEmotionStream:
    return messages_pb2.AudioWithEmotionStream(audio_with_emotion=messages_pb2.AudioWithEmotion(
        audio_buffer=pcm, emotions=[messages_pb2.EmotionWithTimeCode(time_code=t, emotion=dict(e)) for t, e in emotions]))


def end_message() -> messages_pb2.AudioWithEmotionStream:
    return messages_pb2.AudioWithEmotionStream(end_of_audio=messages_pb2.AudioWithEmotionStream.EndOfAudio())


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> int16 (clipped), as a WAV writer would."""
    return np.clip(np.rint(np.asarray(audio, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def stream_pcm(target: str, pcm: np.ndarray, sample_rate: int, *, chunk_seconds: float = 0.1, realtime: bool = True,
               emotion: Mapping[str, float] | None = None, keyframes: Sequence[tuple[float, Mapping[str, float]]] = (),
               face: Mapping[str, float] | None = None, multipliers: Mapping[str, float] | None = None,
               offsets: Mapping[str, float] | None = None, clamp: bool = False, timeout: float = 120.0,
               channel: grpc.Channel | None = None) -> StreamResult:
    """Stream int16 mono `pcm` to the server at `target` ("host:port"). keyframes: time-coded emotion states,
    each sent with the chunk that contains its time code. Raises grpc.RpcError when the server refuses."""
    pcm = np.asarray(pcm, np.int16)
    step = max(int(round(chunk_seconds * sample_rate)), 1)
    sent_at: list[tuple[int, float]] = []
    started = time.perf_counter()
    pending = sorted(keyframes, key=lambda k: k[0])

    def requests():
        yield header_message(sample_rate, emotion, face, multipliers, offsets, clamp)
        for i in range(0, len(pcm), step):
            if realtime:
                delay = started + i / sample_rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            end_t = (i + step) / sample_rate
            keys = [k for k in pending if k[0] < end_t]
            del pending[:len(keys)]
            yield audio_message(pcm[i:i + step].tobytes(), keys)
            sent_at.append((min(i + step, len(pcm)), time.perf_counter()))
        yield end_message()

    own = channel is None
    channel = channel or grpc.insecure_channel(target)
    try:
        stub = audio2face_pb2_grpc.A2FControllerServiceStub(channel)
        names: list[str] = []
        joints: list[str] = []
        times, weights, rots, trans, recv, audio = [], [], [], [], [], []
        status, events = "", 0
        for resp in stub.ProcessAudioStream(requests(), timeout=timeout):
            kind = resp.WhichOneof("stream_part")
            if kind == "animation_data_stream_header":
                names = list(resp.animation_data_stream_header.skel_animation_header.blend_shapes)
                joints = list(resp.animation_data_stream_header.skel_animation_header.joints)
            elif kind == "animation_data":
                now = time.perf_counter()
                skel = resp.animation_data.skel_animation
                for j, w in enumerate(skel.blend_shape_weights):
                    times.append(w.time_code)
                    weights.append(list(w.values))
                    recv.append(now)
                    if j < len(skel.rotations):
                        rots.append([[q.real, q.i, q.j, q.k] for q in skel.rotations[j].values])
                        trans.append([[v.x, v.y, v.z] for v in skel.translations[j].values])
                audio.append(resp.animation_data.audio.audio_buffer)
            elif kind == "event":
                events += 1
            elif kind == "status":
                status = resp.status.message
                if resp.status.code == status_pb2.Status.SUCCESS:
                    break
    finally:
        if own:
            channel.close()
    p = len(names)
    return StreamResult(names, joints, np.asarray(times, np.float64), np.asarray(weights, np.float32).reshape(-1, p),
                        np.asarray(rots, np.float32).reshape(len(rots), -1, 4), np.asarray(trans, np.float32).reshape(len(trans), -1, 3),
                        b"".join(audio), status, events, sent_at, np.asarray(recv), started, time.perf_counter())


def write_csv(path: Any, result: StreamResult) -> None:
    """frame, time, one column per blendshape (the layout `infer.blendshapes.write_weights` writes)."""
    lines = [",".join(["frame", "time"] + result.pose_names)]
    lines += [f"{i},{t!r}," + ",".join(map(str, row)) for i, (t, row) in enumerate(zip(result.times.tolist(), result.weights))]
    atomic_write_text(path, "\n".join(lines) + "\n")
