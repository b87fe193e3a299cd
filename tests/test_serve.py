"""The gRPC server (scripts/serve.py) over localhost with a real client: streamed blendshape weights equal offline
inference + post-processing + blendshape solve of the same bundle and audio, for a regression and a diffusion
bundle; every malformed exchange gets its gRPC status and the server keeps serving.

Tolerance: 1e-4 absolute on weights in [0, ~1.2] — the streamed regression network runs the frames of each chunk
as one onnxruntime batch (offline: batches of 64), which may change the last bits of a row; the diffusion windows
are identical. Post-processing and solver carry their state exactly.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("nvidia_audio2face_3d")

from nvidia_audio2face_3d import audio2face_pb2_grpc  # noqa: E402

import serve_fixtures as SF  # noqa: E402
from a2f_jax.serve import client as C  # noqa: E402
from a2f_jax.serve.server import make_server  # noqa: E402
from a2f_jax.serve.session import ServeModel  # noqa: E402

ATOL = 1e-4
SECONDS = 2.3


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    base = tmp_path_factory.mktemp("serve")
    return {kind: SF.make_bundle(base / kind, kind) for kind in ("regression", "diffusion")}


@pytest.fixture(scope="module")
def servers(bundles):
    """One in-process server per bundle on a free port: 2 streams at most, 3 s idle timeout."""
    out, running = {}, []
    for kind, path in bundles.items():
        server, port, servicer = make_server(ServeModel.load(path), "127.0.0.1", 0, max_streams=2, idle_timeout=3.0)
        server.start()
        running.append(server)
        out[kind] = (f"127.0.0.1:{port}", servicer)
    yield out
    for server in running:
        server.stop(0)


@pytest.fixture(scope="module")
def pcm():
    return SF.speech_like(SECONDS)


def _call(target, messages, timeout=20.0):
    """Raw exchange: (responses, status code, details)."""
    with grpc.insecure_channel(target) as ch:
        stub = audio2face_pb2_grpc.A2FControllerServiceStub(ch)
        out = []
        try:
            for r in stub.ProcessAudioStream(iter(messages), timeout=timeout):
                out.append(r)
        except grpc.RpcError as err:
            return out, err.code(), err.details()
        return out, grpc.StatusCode.OK, ""


def _check_frames(res, ref, n_expected, fps):
    assert res.pose_names == SF.POSES
    assert res.joints == ["jaw", "right_eye", "left_eye"]
    assert len(res.times) == n_expected == len(ref["weights"])
    np.testing.assert_allclose(res.times, np.arange(n_expected) / fps, atol=1e-6)
    np.testing.assert_allclose(res.weights, ref["weights"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(res.rotations, axis=-1), 1.0, atol=1e-5)
    # jaw joint = the post-processing's rigid transform
    m = ref["jaw"].reshape(-1, 4, 4).transpose(0, 2, 1)
    np.testing.assert_allclose(res.translations[:, 0], m[:, :3, 3], atol=1e-4)
    assert res.events == 1 and res.status.startswith("sent")


@pytest.mark.parametrize("kind", ["regression", "diffusion"])
def test_streamed_weights_equal_offline(kind, bundles, servers, pcm):
    target, _ = servers[kind]
    emotion = {"happy": 0.7, "out_of_breath": 0.0}  # a name the bundle lacks, at 0: accepted (Maya-ACE sends ten)
    res = C.stream_pcm(target, pcm, 16000, chunk_seconds=0.037, realtime=False, emotion=emotion)
    ref = SF.offline_weights(bundles[kind], kind, pcm, emotion={"happy": 0.7})
    fps = float(ref["fps"])
    _check_frames(res, ref, int(len(pcm) / 16000 * fps), fps)
    assert res.audio == pcm.tobytes()  # every frame carries its own slice of the client's audio


@pytest.mark.parametrize("kind", ["regression", "diffusion"])
def test_time_coded_emotions_and_odd_chunks(kind, bundles, servers, pcm):
    """Emotion keyframes switch the state from their time code on; chunks of odd byte length are joined."""
    target, _ = servers[kind]
    fps = 30.0 if kind == "regression" else 60.0
    rng = np.random.default_rng(1)
    data = pcm.tobytes()
    cuts = np.sort(rng.choice(np.arange(1, len(data)), 40, replace=False))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    msgs = [C.header_message(16000, emotion={"angry": 0.5})]
    pos = 0
    for p in pieces:
        keys = [(1.0, {"sad": 1.0})] if pos / 2 <= 16000 < (pos + len(p)) / 2 else []
        msgs.append(C.audio_message(p, keys))
        pos += len(p)
    msgs.append(C.end_message())
    out, code, _ = _call(target, msgs)
    assert code == grpc.StatusCode.OK
    weights = np.array([list(r.animation_data.skel_animation.blend_shape_weights[0].values)
                        for r in out if r.HasField("animation_data")])
    n = int(len(pcm) / 16000 * fps)
    per_frame = np.zeros((n, 3), np.float32)
    per_frame[:, 0] = 0.5
    per_frame[np.arange(n) / fps >= 1.0] = [0.0, 0.0, 1.0]
    ref = SF.offline_weights(bundles[kind], kind, pcm, emotion=per_frame)
    np.testing.assert_allclose(weights, ref["weights"], atol=ATOL, rtol=0)
    const = SF.offline_weights(bundles[kind], kind, pcm, emotion={"angry": 0.5})
    assert np.abs(weights[-5:] - const["weights"][-5:]).max() > 1e-3  # the keyframe changed the end


def test_face_and_blendshape_parameters(bundles, servers, pcm):
    """Face parameters override their model_config fields; multipliers/offsets by name; clamping on request."""
    target, _ = servers["regression"]
    face = {"skinStrength": 0.6, "lower_face_smoothing": 0.005, "eyelidOpenOffset": -0.1, "tongueStrength": 2.0}
    res = C.stream_pcm(target, pcm, 16000, chunk_seconds=0.25, realtime=False, face=face,
                       multipliers={"smileLeft": 3.0, "cheekPuff": 1.0}, offsets={"browUp": -0.2, "cheekPuff": 0.0},
                       clamp=True)  # names the bundle lacks, at the neutral 1 / 0: ignored (Maya-ACE sends all 52)
    cfg = {"skin_strength": 0.6, "lower_face_smoothing": 0.005, "eyelid_open_offset": -0.1, "tongue_strength": 2.0}
    ref = SF.offline_weights(bundles["regression"], "regression", pcm, face=cfg)
    mult, off = ref["mult"].copy(), ref["off"].copy()
    mult[SF.POSES.index("smileLeft")], off[SF.POSES.index("browUp")] = 3.0, -0.2
    full = np.zeros((len(ref["raw"]), len(SF.POSES)))
    full[:, ref["active"]] = ref["raw"]
    want = np.clip(full * mult + off, 0.0, 1.0)
    np.testing.assert_allclose(res.weights, want, atol=ATOL, rtol=0)
    assert res.weights.min() >= 0.0 and res.weights.max() <= 1.0


def test_other_sample_rates_are_resampled(servers, pcm):
    """48 kHz in: the server resamples to 16 kHz (stream resampler); weights stay close to the 16 kHz stream,
    the echoed audio is the client's 48 kHz PCM."""
    import soxr

    target, _ = servers["regression"]
    hi = C.to_pcm16(soxr.resample(pcm.astype(np.float32) / 32768.0, 16000, 48000))
    res48 = C.stream_pcm(target, hi, 48000, chunk_seconds=0.1, realtime=False)
    res16 = C.stream_pcm(target, pcm, 16000, chunk_seconds=0.1, realtime=False)
    assert abs(len(res48.times) - len(res16.times)) <= 1 and res48.audio == hi.tobytes()
    n = min(len(res48.times), len(res16.times))
    assert np.abs(res48.weights[:n] - res16.weights[:n]).max() < 0.05


def test_frames_are_sent_before_the_end_of_audio(servers, pcm):
    """Frames go out once their audio context is complete, while the client still holds EndOfAudio back."""
    target, _ = servers["diffusion"]
    seen = threading.Event()

    def requests():
        yield C.header_message(16000)
        yield C.audio_message(pcm[:24000].tobytes())  # 1.5 s: frames up to ~1 s are final
        seen.wait(15.0)
        yield C.audio_message(pcm[24000:].tobytes())
        yield C.end_message()

    with grpc.insecure_channel(target) as ch:
        stub = audio2face_pb2_grpc.A2FControllerServiceStub(ch)
        early = 0
        for r in stub.ProcessAudioStream(requests(), timeout=20):
            if r.HasField("animation_data") and not seen.is_set():
                early += 1
                if early == 30:
                    seen.set()
    assert early >= 30


def test_health_check_reports_serving(servers):
    target, _ = servers["regression"]
    with grpc.insecure_channel(target) as ch:
        assert ch.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=5) == b"\x08\x01"


def _header(**kw):
    msg = C.header_message(16000)
    a = msg.audio_stream_header.audio_header
    for k, v in kw.items():
        setattr(a, k, v)
    return msg


AUDIO = C.audio_message(np.zeros(1600, np.int16).tobytes())
BAD_EXCHANGES = {
    "empty stream": [],
    "no header (audio first)": [AUDIO, C.end_message()],
    "end before header": [C.end_message()],
    "second header": [C.header_message(16000), AUDIO, C.header_message(16000), C.end_message()],
    "non-PCM": [_header(audio_format=3), AUDIO, C.end_message()],
    "8-bit": [_header(bits_per_sample=8), AUDIO, C.end_message()],
    "32-bit": [_header(bits_per_sample=32), AUDIO, C.end_message()],
    "stereo": [_header(channel_count=2), AUDIO, C.end_message()],
    "0 Hz": [_header(samples_per_second=0), AUDIO, C.end_message()],
    "no audio": [C.header_message(16000), C.end_message()],
    "unknown emotion in header": [C.header_message(16000, emotion={"elation": 0.5}), AUDIO, C.end_message()],
    "unknown emotion in chunk": [C.header_message(16000), C.audio_message(b"\0\0" * 800, [(0.0, {"elation": 1.0})]),
                                 C.end_message()],
    "emotion weight above 1": [C.header_message(16000, emotion={"sad": 1.5}), AUDIO, C.end_message()],
    "unknown face parameter": [C.header_message(16000, face={"noseStrength": 1.0}), AUDIO, C.end_message()],
    "face parameter out of range": [C.header_message(16000, face={"skinStrength": 9.0}), AUDIO, C.end_message()],
    "unknown blendshape": [C.header_message(16000, multipliers={"noseWrinkle": 2.0}), AUDIO, C.end_message()],
    "unknown blendshape offset": [C.header_message(16000, offsets={"noseWrinkle": 0.1}), AUDIO, C.end_message()],
    "face parameter not finite": [C.header_message(16000, face={"skinStrength": float("nan")}), AUDIO, C.end_message()],
}


@pytest.mark.parametrize("name", list(BAD_EXCHANGES))
def test_bad_input_gets_invalid_argument(name, servers):
    target, _ = servers["regression"]
    out, code, details = _call(target, BAD_EXCHANGES[name])
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (name, code, details)
    assert details and out and out[-1].HasField("status") and out[-1].status.message == details
    assert not any(r.HasField("animation_data") for r in out)


def _wait_idle(servicer, timeout=10.0):
    t0 = time.time()
    while servicer.active and time.time() - t0 < timeout:
        time.sleep(0.05)
    return servicer.active


def test_stream_limit_disconnects_and_idle_timeout(servers, pcm):
    """RESOURCE_EXHAUSTED past --max-streams; a client that vanishes midway frees its slot; a silent client is
    ended with DEADLINE_EXCEEDED; the server keeps serving throughout."""
    target, servicer = servers["regression"]
    assert _wait_idle(servicer) == 0
    release = threading.Event()

    def held():
        yield C.header_message(16000)
        yield C.audio_message(pcm[:8000].tobytes())
        release.wait(15.0)
        yield C.end_message()

    channels = [grpc.insecure_channel(target) for _ in range(2)]
    calls = [audio2face_pb2_grpc.A2FControllerServiceStub(ch).ProcessAudioStream(held(), timeout=30) for ch in channels]
    first = [next(c) for c in calls]  # both admitted: the headers came back
    assert all(r.HasField("animation_data_stream_header") for r in first)
    out, code, details = _call(target, [C.header_message(16000), AUDIO, C.end_message()])
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "2 concurrent" in details
    calls[0].cancel()  # the first client disconnects midway
    release.set()
    assert all(r.WhichOneof("stream_part") for r in calls[1])  # the second finishes normally
    for ch in channels:
        ch.close()
    assert _wait_idle(servicer) == 0
    t0 = time.time()
    out, code, _ = _call(target, [C.header_message(16000), AUDIO] + [])  # generator ends: half-close = end of audio
    assert code == grpc.StatusCode.OK
    silent = threading.Event()

    def quiet():
        yield C.header_message(16000)
        silent.wait(10.0)

    with grpc.insecure_channel(target) as ch:
        try:
            list(audio2face_pb2_grpc.A2FControllerServiceStub(ch).ProcessAudioStream(quiet(), timeout=20))
            code = grpc.StatusCode.OK
        except grpc.RpcError as err:
            code = err.code()
    silent.set()
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and time.time() - t0 < 10
    res = C.stream_pcm(target, pcm, 16000, realtime=False)
    assert len(res.times) == int(SECONDS * 30)
    assert _wait_idle(servicer) == 0


def test_load_errors_name_the_problem(bundles):
    from a2f_jax.errors import DataError

    with pytest.raises(DataError, match="bs_skin_mark.npz"):
        ServeModel.load(bundles["diffusion"], "mark")  # no blendshapes for mark in this bundle
    with pytest.raises(DataError, match="identities"):
        ServeModel.load(bundles["diffusion"], "nobody")
    with pytest.raises(DataError, match="frame rate"):
        ServeModel.load(bundles["diffusion"], fps=30)


def test_stream_client_cli_writes_the_weights(bundles, servers, pcm, tmp_path):
    import soundfile

    from a2f_jax import blendshapes as bs
    from a2f_jax.serve.cli import client_main, serve_main

    target, _ = servers["regression"]
    wav, out = tmp_path / "a.wav", tmp_path / "w.csv"
    soundfile.write(wav, pcm, 16000, subtype="PCM_16")
    port = target.rsplit(":", 1)[1]
    assert client_main([str(wav), "--out", str(out), "--port", port, "--fast", "--emotion", "happy=0.7"]) == 0
    names, weights, fps = bs.read_weights(out)
    ref = SF.offline_weights(bundles["regression"], "regression", pcm, emotion={"happy": 0.7})
    assert names == SF.POSES and fps == 30.0
    np.testing.assert_allclose(weights, ref["weights"], atol=ATOL, rtol=0)
    assert client_main([str(wav), "--out", str(out), "--port", port, "--emotion", "elation=1"]) == 1  # refused
    assert serve_main(["--bundle", str(tmp_path), "--port", "0"]) == 2  # not a bundle: one error line
    assert serve_main(["--bundle", str(bundles["regression"]), "--max-streams", "0"]) == 2
