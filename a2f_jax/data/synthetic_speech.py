"""Speech-like audio for the synthetic dataset: a phoneme timeline and a source-filter synthesiser.

The same timeline drives the face (`synthetic_face`), so audio determines the animation:
vowels are voiced (glottal pulse train through three formant resonators) with loudness rising with
vowel openness, bilabials are closures (silence then a low burst), fricatives are band-passed noise,
pauses are near-silence. Everything is vectorised per segment; one shot takes milliseconds.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.signal

SAMPLERATE = 16000

# Phone -> (kind, formants Hz or noise band Hz, level). Openness of vowels lives in PHONE_CONTROLS.
VOWELS = {
    "a": (800.0, 1200.0, 2500.0),
    "e": (500.0, 1900.0, 2500.0),
    "i": (300.0, 2300.0, 3000.0),
    "o": (500.0, 900.0, 2400.0),
    "u": (320.0, 800.0, 2300.0),
}
SONORANTS = {"m": (250.0, 1200.0, 2500.0), "n": (250.0, 1600.0, 2600.0), "l": (350.0, 1100.0, 2500.0)}
FRICATIVES = {"s": (4000.0, 7500.0), "sh": (2000.0, 5000.0), "f": (1200.0, 7000.0)}
PLOSIVES = {"p": (400.0, 2000.0), "b": (300.0, 1500.0), "t": (3000.0, 7000.0), "d": (2500.0, 6000.0), "k": (1500.0, 3500.0), "g": (1200.0, 3000.0)}
CONSONANTS = list(SONORANTS) + list(FRICATIVES) + list(PLOSIVES)
BILABIALS = ("m", "b", "p")
SILENCE = "sil"

# Controls per phone: jaw opening, lip closure (m/b/p), lip shapes, tongue. 0 when absent.
PHONE_CONTROLS: dict[str, dict[str, float]] = {
    "a": {"jaw": 0.75, "tongue_down": 0.4},
    "e": {"jaw": 0.45, "stretch": 0.3, "tongue_up": 0.2},
    "i": {"jaw": 0.22, "stretch": 0.5, "tongue_up": 0.4},
    "o": {"jaw": 0.5, "funnel": 0.5, "pucker": 0.2, "tongue_back": 0.3},
    "u": {"jaw": 0.25, "pucker": 0.7, "funnel": 0.2, "tongue_back": 0.5},
    "m": {"jaw": 0.12, "close": 0.12, "press": 0.2},
    "b": {"jaw": 0.1, "close": 0.1, "press": 0.4},
    "p": {"jaw": 0.1, "close": 0.1, "press": 0.5},
    "f": {"jaw": 0.12, "close": 0.06},
    "s": {"jaw": 0.1, "stretch": 0.2, "tongue_tip": 0.6},
    "sh": {"jaw": 0.12, "funnel": 0.4, "tongue_tip": 0.4},
    "t": {"jaw": 0.15, "tongue_tip": 1.0},
    "d": {"jaw": 0.15, "tongue_tip": 1.0},
    "n": {"jaw": 0.15, "tongue_tip": 0.9},
    "l": {"jaw": 0.25, "tongue_tip": 0.8},
    "k": {"jaw": 0.2, "tongue_back": 1.0},
    "g": {"jaw": 0.2, "tongue_back": 1.0},
    SILENCE: {},
}
CONTROL_NAMES = ("jaw", "close", "funnel", "pucker", "stretch", "press", "tongue_tip", "tongue_back", "tongue_up", "tongue_down")

# Emotion -> (f0 factor, loudness factor, tempo factor).
EMOTION_VOICE = {"neutral": (1.0, 1.0, 1.0), "joy": (1.25, 1.1, 0.9), "anger": (1.1, 1.35, 0.95), "sadness": (0.88, 0.7, 1.25)}


@dataclasses.dataclass(frozen=True)
class Segment:
    start: float  # seconds
    end: float
    phone: str


def make_timeline(rng: np.random.Generator, duration: float, tempo: float = 1.0) -> list[Segment]:
    """Syllables (C)V(C) with pauses, filling [0, duration); starts and ends with silence."""
    segments: list[Segment] = []
    t = float(rng.uniform(0.15, 0.35))
    segments.append(Segment(0.0, t, SILENCE))
    syllables_to_pause = int(rng.integers(4, 9))
    while True:
        phones: list[tuple[str, float]] = []
        if rng.random() < 0.8:
            phones.append((str(rng.choice(CONSONANTS)), rng.uniform(0.05, 0.1) * tempo))
        phones.append((str(rng.choice(list(VOWELS))), rng.uniform(0.09, 0.22) * tempo))
        if rng.random() < 0.3:
            phones.append((str(rng.choice(CONSONANTS)), rng.uniform(0.05, 0.09) * tempo))
        syllables_to_pause -= 1
        if syllables_to_pause == 0:
            phones.append((SILENCE, rng.uniform(0.2, 0.5)))
            syllables_to_pause = int(rng.integers(4, 9))
        if t + sum(d for _, d in phones) > duration - 0.2:
            break
        for phone, dur in phones:
            segments.append(Segment(t, t + dur, phone))
            t += dur
    segments.append(Segment(t, duration, SILENCE))
    return _merge_silences(segments)


def _merge_silences(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for seg in segments:
        if merged and merged[-1].phone == SILENCE and seg.phone == SILENCE:
            merged[-1] = Segment(merged[-1].start, seg.end, SILENCE)
        else:
            merged.append(seg)
    return merged


def _resonator(freq: float, bandwidth: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-pole resonator with unit gain at DC-normalised peak (Klatt style)."""
    r = np.exp(-np.pi * bandwidth / sr)
    a = np.array([1.0, -2.0 * r * np.cos(2 * np.pi * freq / sr), r * r])
    return np.array([a.sum()]), a


def _formant_filter(x: np.ndarray, formants: tuple[float, ...], sr: int) -> np.ndarray:
    for freq, bw in zip(formants, (80.0, 100.0, 150.0)):
        b, a = _resonator(freq, bw, sr)
        x = scipy.signal.lfilter(b, a, x)
    return x


def _glottal_source(rng: np.random.Generator, f0: np.ndarray, sr: int) -> np.ndarray:
    """Impulses at each glottal period, shaped by spectral tilt (-12 dB/oct) and lip radiation (+6)."""
    phase = np.cumsum(f0 / sr)
    pulses = np.zeros_like(f0)
    pulses[1:][np.diff(np.floor(phase)) > 0] = 1.0
    src = scipy.signal.lfilter([1.0], [1.0, -1.94, 0.9409], pulses)  # double pole at 0.97
    src = np.diff(src, prepend=0.0)
    src = src / (np.std(src) + 1e-9)
    return src + 0.05 * rng.standard_normal(f0.shape)  # a little aspiration


def _pitch_contour(rng: np.random.Generator, n: int, sr: int, f0_base: float) -> np.ndarray:
    t = np.arange(n) / sr
    duration = n / sr
    declination = 1.0 - 0.15 * t / max(duration, 1e-6)
    wobble = 0.06 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t + rng.uniform(0, 2 * np.pi))
    vibrato = 0.01 * np.sin(2 * np.pi * 5.5 * t)
    return f0_base * declination * (1.0 + wobble + vibrato)


def segment_level(phone: str) -> float:
    """Loudness of a phone before emotion scaling: vowels rise with openness (jaw control)."""
    if phone in VOWELS:
        return 0.35 + 0.65 * PHONE_CONTROLS[phone]["jaw"] / 0.75
    if phone in SONORANTS:
        return 0.18
    if phone in FRICATIVES:
        return 0.12 if phone != "f" else 0.05
    if phone in PLOSIVES:
        return 0.3
    return 0.0


def synthesize(
    rng: np.random.Generator, segments: list[Segment], duration: float, emotion: str = "neutral", sr: int = SAMPLERATE
) -> np.ndarray:
    """Mono float audio in [-1, 1) for the timeline. Segments are cross-faded over 10 ms."""
    n = int(round(duration * sr))
    f0_factor, loudness, _ = EMOTION_VOICE.get(emotion, EMOTION_VOICE["neutral"])
    f0 = _pitch_contour(rng, n, sr, rng.uniform(105.0, 190.0) * f0_factor)
    voiced_src = _glottal_source(rng, f0, sr)
    noise_src = rng.standard_normal(n)
    out = np.zeros(n)
    fade = int(0.01 * sr)
    pad = int(0.03 * sr)  # filter warm-up kept outside the faded region
    for seg in segments:
        if seg.phone == SILENCE:
            continue
        a, b = int(round(seg.start * sr)), int(round(seg.end * sr))
        lo, hi = max(a - fade // 2 - pad, 0), min(b + fade // 2 + pad, n)
        if seg.phone in VOWELS or seg.phone in SONORANTS:
            formants = VOWELS.get(seg.phone) or SONORANTS[seg.phone]
            piece = _formant_filter(voiced_src[lo:hi], formants, sr)
            piece = piece / (np.sqrt(np.mean(piece[a - lo : b - lo] ** 2)) + 1e-9)
        elif seg.phone in FRICATIVES:
            low, high = FRICATIVES[seg.phone]
            sos = scipy.signal.butter(4, [low, min(high, sr / 2 - 100)], btype="band", fs=sr, output="sos")
            piece = scipy.signal.sosfilt(sos, noise_src[lo:hi])
            piece = piece / (np.std(piece) + 1e-9)
        else:  # plosive: closure (silence) for 60% of the segment, then a decaying burst
            low, high = PLOSIVES[seg.phone]
            sos = scipy.signal.butter(2, [low, high], btype="band", fs=sr, output="sos")
            piece = scipy.signal.sosfilt(sos, noise_src[lo:hi])
            piece = piece / (np.std(piece) + 1e-9)
            t = (np.arange(lo, hi) - (a + 0.6 * (b - a))) / sr
            piece = piece * np.where(t < 0, 0.0, np.exp(-np.maximum(t, 0) / 0.015))
        # Raised-cosine cross-fade centred on the segment borders: neighbours sum to one.
        idx = np.arange(lo, hi)
        rise = np.clip((idx - (a - fade / 2)) / fade, 0.0, 1.0)
        fall = np.clip(((b + fade / 2) - idx) / fade, 0.0, 1.0)
        window = np.sin(0.5 * np.pi * rise) ** 2 * np.sin(0.5 * np.pi * fall) ** 2
        out[lo:hi] += piece * window * segment_level(seg.phone)
    out = 0.17 * loudness * out + 1e-4 * rng.standard_normal(n)  # room noise floor
    return np.clip(out, -1.0, 32767.0 / 32768.0)
