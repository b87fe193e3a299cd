"""Console entry points: `a2f-serve` (`scripts/serve.py`) and `a2f-stream-client` (`scripts/stream_client.py`)."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading

from a2f_jax import cli
from a2f_jax.errors import ConfigError

log = logging.getLogger("a2f_jax.serve")


@cli.main_guard
def serve_main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(description="Serve a deploy bundle over the Audio2Face-3D NIM gRPC API "
                                "(A2FControllerService/ProcessAudioStream), for Maya-ACE 1.x and other ACE clients.")
    p.add_argument("--bundle", required=True, help="a regression or diffusion deploy bundle with skin blendshapes")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=52000, help="port (default 52000; 0: any free port)")
    p.add_argument("--max-streams", type=int, default=4, help="concurrent streams; more are refused (RESOURCE_EXHAUSTED)")
    p.add_argument("--identity", help="the bundle identity to animate (default: its first)")
    p.add_argument("--fps", type=float, help="regression output frame rate (default 30; diffusion: the network's)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads per network call (default 1)")
    p.add_argument("--idle-timeout", type=float, default=30.0, help="seconds without a client message before a "
                   "stream is ended (DEADLINE_EXCEEDED)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _need_grpc()
    from a2f_jax.serve.server import make_server  # grpc (optional extra) and the networks: after the check
    from a2f_jax.serve.session import ServeModel, describe_model  # the networks (jax, onnxruntime): heavy

    for name in ("max_streams", "threads"):
        if getattr(args, name) < 1:
            raise cli.UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.idle_timeout > 0:
        raise cli.UsageError(f"--idle-timeout must be > 0 s, got {args.idle_timeout}")
    model = ServeModel.load(args.bundle, args.identity, args.fps, args.threads)
    server, port, _ = make_server(model, args.host, args.port, args.max_streams, args.idle_timeout)
    server.start()
    info = describe_model(model) | {"listening": f"{args.host}:{port}", "max_streams": args.max_streams}
    print(json.dumps(info), flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("stopping")
    server.stop(grace=2.0).wait()
    return 0


def _emotions(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise cli.UsageError(f"--emotion takes NAME=WEIGHT, got {item!r}")
    return out


def _need_grpc() -> None:
    try:
        import grpc  # noqa: F401 (the optional [serve] extra)
        import nvidia_audio2face_3d  # noqa: F401
    except ImportError as err:
        raise ConfigError(f"serving needs the [serve] extra (pip install -e \".[serve]\"): {err}") from None


@cli.main_guard
def client_main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(description="Stream a WAV to an A2FControllerService in real-time-sized chunks and "
                                "write the blendshape weights that come back as CSV.")
    p.add_argument("wav", help="a WAV file (mixed to mono, sent as 16-bit PCM at its own rate)")
    p.add_argument("--out", required=True, help="weights CSV (frame, time, one column per blendshape)")
    p.add_argument("--emotion", action="append", default=[], metavar="NAME=W", help="emotion weight (repeatable)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=52000)
    p.add_argument("--chunk", type=float, default=0.1, help="seconds of audio per message (default 0.1)")
    p.add_argument("--fast", action="store_true", help="send as fast as possible instead of in real time")
    args = p.parse_args(argv)
    _need_grpc()
    import grpc  # only here: the optional [serve] extra

    from a2f_jax.data.audio import read_wav  # after the usage checks: soundfile/scipy are slow to import
    from a2f_jax.serve.client import stream_pcm, to_pcm16, write_csv  # grpc: the optional [serve] extra

    audio, rate = read_wav(args.wav)
    if not args.chunk > 0:
        raise cli.UsageError(f"--chunk must be > 0 s, got {args.chunk}")
    try:
        result = stream_pcm(f"{args.host}:{args.port}", to_pcm16(audio), rate, chunk_seconds=args.chunk,
                            realtime=not args.fast, emotion=_emotions(args.emotion))
    except grpc.RpcError as err:
        print(f"error: the server answered {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    write_csv(args.out, result)
    took = result.finished - result.started
    print(f"{len(result.times)} frames x {len(result.pose_names)} blendshapes in {took:.2f} s "
          f"({len(audio) / rate:.2f} s of audio) -> {args.out}; server: {result.status}")
    return 0
