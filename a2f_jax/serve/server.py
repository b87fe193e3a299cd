"""The gRPC server: `nvidia_ace.services.a2f_controller.v1.A2FControllerService/ProcessAudioStream` for one bundle,
plus the standard `grpc.health.v1.Health/Check` (Maya-ACE 1.x checks it before streaming).

Each stream runs on its own server thread; a helper thread drains the client's messages into a queue, so a client
that writes all its audio before reading (as Maya-ACE 1.x does) never stalls the server on flow control, and
frames go out as soon as their audio context is complete. Refusals (gRPC status + message, the server keeps
serving): INVALID_ARGUMENT for a malformed exchange or parameter (no header, a second header, audio before the
header, a non-PCM / non-16-bit / multi-channel / 0 Hz audio header, no audio, unknown emotion, face parameter or
blendshape names, weights out of range); RESOURCE_EXHAUSTED beyond `max_streams` concurrent streams;
DEADLINE_EXCEEDED after `idle_timeout` seconds without a message; INTERNAL for an unexpected failure (logged).
A client that disconnects midway ends its stream quietly and frees its slot.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent import futures
from typing import Any, Iterator

import grpc
from nvidia_audio2face_3d import audio2face_pb2_grpc

from a2f_jax.errors import A2FError
from a2f_jax.serve import protocol as P
from a2f_jax.serve.session import ServeModel, StreamError

log = logging.getLogger(__name__)

SERVICE = "nvidia_ace.services.a2f_controller.v1.A2FControllerService"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
SERVING = b"\x08\x01"  # grpc.health.v1.HealthCheckResponse{status: SERVING}
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class _Closed(Exception):
    """The client went away (cancelled, disconnected or half-closed without EndOfAudio)."""


class A2FControllerServicer(audio2face_pb2_grpc.A2FControllerServiceServicer):
    def __init__(self, model: ServeModel, max_streams: int = 4, idle_timeout: float = 30.0) -> None:
        self.model = model
        self.max_streams = int(max_streams)
        self.idle_timeout = float(idle_timeout)
        self._lock = threading.Lock()
        self.active = 0
        self.served = 0

    def _acquire(self) -> bool:
        with self._lock:
            if self.active >= self.max_streams:
                return False
            self.active += 1
            return True

    def _release(self) -> None:
        with self._lock:
            self.active -= 1
            self.served += 1

    def ProcessAudioStream(self, request_iterator: Iterator[Any], context: grpc.ServicerContext):  # noqa: N802 (gRPC name)
        if not self._acquire():
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"the server is already serving its maximum of {self.max_streams} concurrent streams")
        peer = context.peer()
        t0 = time.perf_counter()
        frames = 0
        try:
            inbox: queue.Queue = queue.Queue()
            context.add_callback(lambda: inbox.put(("closed", None)))
            threading.Thread(target=_drain, args=(request_iterator, inbox), daemon=True, name="a2f-serve-reader").start()
            for response in self._exchange(inbox):
                frames += response.HasField("animation_data")
                yield response
            log.info("stream %s: %d frames in %.2f s", peer, frames, time.perf_counter() - t0)
        except StreamError as err:
            log.info("stream %s refused: %s: %s", peer, err.code, err.message)
            yield P.status_response(False, err.message)
            context.abort(getattr(grpc.StatusCode, err.code), err.message)
        except _Closed:
            log.info("stream %s: client went away after %d frames", peer, frames)
        except A2FError as err:  # a value the network side refuses (e.g. an emotion weight), reported as such
            yield P.status_response(False, str(err))
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        except Exception as err:  # an unexpected failure ends this stream only; the server keeps serving
            if isinstance(err, grpc.RpcError) or not context.is_active():
                log.info("stream %s ended: %s", peer, type(err).__name__)
                return
            log.exception("stream %s failed", peer)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(err).__name__}: {err}")
        finally:
            self._release()

    def _next(self, inbox: queue.Queue) -> Any:
        try:
            kind, item = inbox.get(timeout=self.idle_timeout)
        except queue.Empty:
            raise StreamError("DEADLINE_EXCEEDED", f"no message from the client for {self.idle_timeout:g} s") from None
        if kind == "msg":
            return item
        if kind == "end":
            return None
        raise _Closed()

    def _exchange(self, inbox: queue.Queue) -> Iterator[Any]:
        first = self._next(inbox)
        if first is None:
            raise StreamError("INVALID_ARGUMENT", "empty stream: the client sent no message (the first must be "
                              "the audio_stream_header)")
        kind = P.request_kind(first)
        if kind != "audio_stream_header":
            raise StreamError("INVALID_ARGUMENT", f"the first message must be the audio_stream_header, got {kind or 'an empty message'}")
        header = first.audio_stream_header
        session = self.model.open(P.settings_from_header(header))
        yield P.header_response(header.audio_header, self.model.pose_names)
        while True:
            msg = self._next(inbox)
            kind = None if msg is None else P.request_kind(msg)
            if kind == "audio_with_emotion":
                chunk = msg.audio_with_emotion
                session.add_emotions(P.emotion_keyframes(chunk))
                for frame in session.push(chunk.audio_buffer):
                    yield P.frame_response(frame)
            elif kind == "end_of_audio" or msg is None:  # a half-close without EndOfAudio ends the audio too
                if session.n_in == 0:
                    raise StreamError("INVALID_ARGUMENT", "the stream ended without audio")
                for frame in session.finish():
                    yield P.frame_response(frame)
                yield P.end_event()
                yield P.status_response(True, f"sent {session.emitted} frames")
                return
            elif kind == "audio_stream_header":
                raise StreamError("INVALID_ARGUMENT", "a second audio_stream_header: a stream has exactly one, first")
            else:
                raise StreamError("INVALID_ARGUMENT", "an empty AudioWithEmotionStream message")


def _drain(request_iterator: Iterator[Any], inbox: queue.Queue) -> None:
    try:
        for msg in request_iterator:
            inbox.put(("msg", msg))
        inbox.put(("end", None))
    except Exception:  # the RPC was cancelled or the connection dropped
        inbox.put(("closed", None))


def _health(request: bytes, context: grpc.ServicerContext) -> bytes:
    return SERVING


def make_server(model: ServeModel, host: str = "127.0.0.1", port: int = 52000, max_streams: int = 4,
                idle_timeout: float = 30.0) -> tuple[grpc.Server, int, A2FControllerServicer]:
    """A started-ready (not yet started) server bound to host:port (0: a free port); returns (server, port, servicer)."""
    if max_streams < 1:
        raise ValueError(f"max_streams must be >= 1, got {max_streams}")
    servicer = A2FControllerServicer(model, max_streams, idle_timeout)
    opts = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0)]
    # threads: every admitted stream, plus room to refuse extra ones and answer health checks
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_streams + 4, thread_name_prefix="a2f-serve"), options=opts)
    audio2face_pb2_grpc.add_A2FControllerServiceServicer_to_server(servicer, server)
    health = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(_health)})
    server.add_generic_rpc_handlers((health,))
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"cannot listen on {host}:{port}")
    return server, bound, servicer
