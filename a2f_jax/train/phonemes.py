"""Phoneme supervision targets (docs/training.md "Phoneme supervision") from pluggable per-shot posterior files.

The original runs Charsiu frame classifiers from the model hub. Here any external aligner may produce the
posteriors; training reads them from files:

* `PHONEME_POSTERIORS_ROOT = {"<actor>": "<dir>"}` with `<dir>/<lang>/<audio file stem>.npy`, float32
  [T100, P] class probabilities at **100 fps** (the Charsiu 10 ms frame rate; rows sum to 1),
* `PHONEME_VOCAB = {"<lang>": ["[SIL]", ...]}` the class names, P = len, "[SIL]" must be present.

As in the original the 100 fps track is reduced to 50 fps by keeping every 2nd frame, time maps to an index
with the edge-corrected rate r' = n / (n/50 + 0.02), and each training frame gets a 25-frame window
[idx - 12, idx + 13) filled with one-hot [SIL] outside the track, zero-padded to the largest vocabulary.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import pathlib
from typing import Any, Sequence

import numpy as np
import soundfile as sf
from scipy.ndimage import gaussian_filter1d

from a2f_jax.data.caches import load_npy
from a2f_jax.errors import ConfigError, DataError, describe
from a2f_jax.io_utils import atomic_path
from a2f_jax.train.losses import phoneme_class_weights

log = logging.getLogger(__name__)

SIL = "[SIL]"
POSTERIOR_FPS = 100.0  # rate of the files
FEATURE_FPS = 50.0  # wav2vec feature rate the windows use
EDGE_SECONDS = 0.02  # the original's edge-effect correction of the phoneme rate
UNSUPPORTED = "unsupported"


def window_length(buffer_len: int, samplerate: int = 16000) -> int:
    """wav2vec frames per audio buffer: floor((buffer_len - 80) * 50 / samplerate) (25 for 8320)."""
    return int(math.floor((buffer_len - 80) * FEATURE_FPS / samplerate))


def edge_corrected_rate(num_frames: int, fps: float = FEATURE_FPS) -> float:
    """r' = n / (n / fps + 0.02)."""
    return num_frames / (num_frames / fps + EDGE_SECONDS)


def frame_index(seconds: np.ndarray | float, num_frames: int) -> np.ndarray:
    """floor(sec * r') in float64 like the original's Python floats."""
    return np.floor(np.asarray(seconds, np.float64) * edge_corrected_rate(num_frames)).astype(np.int64)


def to_feature_rate(posteriors_100fps: np.ndarray) -> np.ndarray:
    """100 fps -> 50 fps by keeping every 2nd frame (the original's `resample`)."""
    return posteriors_100fps[::2]


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T): the original's softmax(logits / T) when only probabilities are known."""
    if temperature == 1.0:
        return probs
    logits = np.log(np.maximum(probs, 1e-12)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def reference_window(track50: np.ndarray | None, seconds: float, sil_index: int, window: int, max_phonemes: int) -> np.ndarray:
    """NumPy reference of one training frame's target [window, max_phonemes] (the original's get_frame_data).

    track50 None: a muted clip (one-hot [SIL] everywhere)."""
    if track50 is None:
        out = np.zeros((window, max_phonemes), np.float32)
        out[:, sil_index] = 1.0
        return out
    ofs = int(frame_index(seconds, len(track50))) - window // 2
    out = np.zeros((window, track50.shape[1]), np.float32)
    out[:, sil_index] = 1.0
    lo, hi = max(0, -ofs), min(window, len(track50) - ofs)
    if lo < hi:
        out[lo:hi] = track50[ofs + lo: ofs + hi]
    return np.pad(out, [(0, 0), (0, max_phonemes - out.shape[1])])


@dataclasses.dataclass
class PhonemeSetup:
    """What the sampler and the loss need: languages, vocabularies and the 50 fps tracks of the clips."""

    langs: list[str]  # PHONEME_FORCING_LANGS order (the network's heads)
    vocab: dict[str, list[str]]
    tracks: dict[tuple[str, str, str], np.ndarray]  # (actor, lang, audio stem) -> [n50, P_lang]
    window: int
    sil_weight: float = 1.0

    @property
    def num_phonemes(self) -> dict[str, int]:
        return {lang: len(self.vocab[lang]) for lang in self.langs}

    @property
    def max_phonemes(self) -> int:
        return max(self.num_phonemes.values())

    @property
    def muted_lang(self) -> str:
        return self.langs[0]

    def sil_index(self, lang: str) -> int:
        return self.vocab[lang].index(SIL)

    def class_weights(self) -> list[np.ndarray]:

        return [phoneme_class_weights(len(self.vocab[lang]), self.sil_index(lang), self.sil_weight) for lang in self.langs]

    def track(self, clip: Any) -> np.ndarray | None:
        """The clip's 50 fps track; None for muted clips and clips of languages that are not enabled."""
        if clip.muted or clip.lang not in self.langs:
            return None
        return self.tracks[track_key(clip)]


def track_key(clip: Any) -> tuple[str, str, str]:
    return (clip.actor, clip.lang, pathlib.Path(clip.audio_path).stem)


def _cfg_dict(tcfg: Any, key: str) -> dict:
    value = tcfg[key]
    return value.to_dict() if hasattr(value, "to_dict") else dict(value)


def load_posteriors(path: pathlib.Path, vocab_size: int) -> np.ndarray:
    """A [T100, P] float32 posterior file, checked."""
    if not path.is_file():
        raise DataError(describe(path, None, "a phoneme posterior file [T100, P] (.npy)", "no such file"))
    arr = load_npy(path)  # size-checked against its header, no pickles
    if arr.ndim != 2 or arr.shape[1] != vocab_size or arr.shape[0] < 1:
        raise DataError(describe(path, None, f"shape [T100, {vocab_size}] (PHONEME_VOCAB size)", str(arr.shape)))
    if not np.all(np.isfinite(arr)):
        raise DataError(describe(path, None, "finite probabilities", "NaN or Inf"))
    return arr.astype(np.float32)


def enabled_reason(tcfg: Any) -> str | None:
    """None when phoneme supervision is on, else why it is off (a regression train config)."""
    if not list(tcfg.PHONEME_FORCING_LANGS):
        return "PHONEME_FORCING_LANGS is empty"
    if tcfg.LOSS_PHONEME_ALPHA is None:
        return "LOSS_PHONEME_ALPHA is None"
    if not _cfg_dict(tcfg, "PHONEME_POSTERIORS_ROOT"):
        return "no PHONEME_POSTERIORS_ROOT is configured (no hub aligner in a2f-jax)"
    return None


def build_phoneme_setup(tcfg: Any, clips: Sequence[Any]) -> PhonemeSetup | None:
    """Load the posteriors of every clip whose language is enabled; None when supervision is off."""
    reason = enabled_reason(tcfg)
    if reason is not None:
        if tcfg.LOSS_PHONEME_ALPHA is not None and list(tcfg.PHONEME_FORCING_LANGS):
            log.warning("phoneme supervision is off: %s", reason)
        return None
    langs = [str(x) for x in tcfg.PHONEME_FORCING_LANGS]
    roots = {k: pathlib.Path(str(v)) for k, v in _cfg_dict(tcfg, "PHONEME_POSTERIORS_ROOT").items()}
    vocab_cfg = _cfg_dict(tcfg, "PHONEME_VOCAB")
    vocab: dict[str, list[str]] = {}
    for lang in langs:
        names = [str(n) for n in (vocab_cfg.get(lang) or [])]
        if not names:
            raise ConfigError(describe("config_train", "PHONEME_VOCAB", f"a class-name list for language {lang!r}", repr(sorted(vocab_cfg))))
        if SIL not in names:
            raise ConfigError(describe("config_train", f"PHONEME_VOCAB[{lang!r}]", f"a {SIL!r} class", repr(names[:8])))
        vocab[lang] = names
    temperature = float(tcfg.PHONEME_PROB_TEMPERATURE)
    tracks: dict[tuple[str, str, str], np.ndarray] = {}
    for clip in clips:
        if clip.muted or clip.lang not in langs:
            continue
        key = track_key(clip)
        if key in tracks:
            continue
        if clip.actor not in roots:
            raise ConfigError(describe("config_train", "PHONEME_POSTERIORS_ROOT", f"a folder for actor {clip.actor!r}", repr(sorted(roots))))
        path = roots[clip.actor] / clip.lang / f"{key[2]}.npy"
        probs = apply_temperature(load_posteriors(path, len(vocab[clip.lang])), temperature)
        tracks[key] = to_feature_rate(probs)
    window = window_length(int(tcfg.AUDIO_PARAMS["buffer_len"]), int(tcfg.AUDIO_PARAMS["samplerate"]))
    log.info("phoneme supervision on: langs %s, vocab sizes %s, %d tracks", langs, {k: len(v) for k, v in vocab.items()}, len(tracks))
    return PhonemeSetup(langs, vocab, tracks, window, float(tcfg.LOSS_PHONEME_SIL_WEIGHT))


# ----------------------------------------------------------------------------------------------------------
# Posterior files from a known phoneme timeline (synthetic dataset: ground_truth/<actor>/phonemes.json)
# ----------------------------------------------------------------------------------------------------------


def posteriors_from_timeline(segments: Sequence[Sequence[Any]], num_frames: int, vocab: Sequence[str],
                             silence: str = "sil", smooth_frames: float = 0.0) -> np.ndarray:
    """[num_frames, P] 100 fps probabilities from [[start_s, end_s, phone], ...]: one-hot of the phone at
    each frame centre ([SIL] for `silence` and gaps), optionally blurred over ~smooth_frames and renormalised."""
    index = {name: i for i, name in enumerate(vocab)}
    sil = index[SIL]
    labels = np.full(num_frames, sil, np.int64)
    centres = (np.arange(num_frames) + 0.5) / POSTERIOR_FPS
    for start, end, phone in segments:
        cls = sil if phone == silence else index[phone]
        labels[(centres >= float(start)) & (centres < float(end))] = cls
    probs = np.eye(len(vocab), dtype=np.float32)[labels]
    if smooth_frames > 0:

        probs = gaussian_filter1d(probs, smooth_frames, axis=0, mode="nearest")
        probs /= probs.sum(axis=1, keepdims=True)
    return probs.astype(np.float32)


def write_synthetic_posteriors(dataset_root: str | pathlib.Path, actor: str, out_dir: str | pathlib.Path,
                               lang: str = "en", smooth_frames: float = 1.0) -> list[str]:
    """Write `<out_dir>/<lang>/<shot>.npy` for every shot of a synthetic dataset; return the vocabulary
    (["[SIL]", phones in sorted order]) to use as PHONEME_VOCAB[lang]. The frame count follows the wav length."""


    root = pathlib.Path(dataset_root)
    timeline_path = root / "ground_truth" / actor / "phonemes.json"
    if not timeline_path.is_file():
        raise DataError(describe(timeline_path, None, "the synthetic phoneme timeline", "no such file"))
    timelines = json.loads(timeline_path.read_text())
    phones = sorted({seg[2] for segs in timelines.values() for seg in segs} - {"sil"})
    vocab = [SIL, *phones]
    for shot, segs in timelines.items():
        wav = root / "data" / actor / "audio" / f"{shot}.wav"
        seconds = sf.info(str(wav)).duration if wav.is_file() else float(segs[-1][1])
        probs = posteriors_from_timeline(segs, int(round(seconds * POSTERIOR_FPS)), vocab, smooth_frames=smooth_frames)
        path = pathlib.Path(out_dir) / lang / f"{shot}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, probs)
    return vocab
