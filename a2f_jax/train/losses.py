"""Regression losses of `conv_w2v_autocorr` (docs/training.md "Losses"), as pure jnp functions.

Every function takes explicit arrays; nothing reads global state. The combination in `regression_loss`
follows the original trainer: eye-closing mask on both prediction and target, annealed stddev
normalisation for mse / motion / emo_reg / phoneme / phoneme_motion, plain weights for lip distance,
lip size and volume stabilisation. Term names are the original's TensorBoard scalar names.

Vertex-space losses never rebuild the whole mesh: the y-coordinate difference of two vertices is linear
in the PCA coefficients, so `prepare_loss_geometry` gathers just those basis columns once on the host.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from a2f_jax.errors import ConfigError, DataError

Array = jax.Array

NORMALIZED_TERMS = ("mse", "motion", "emo_reg", "phoneme", "phoneme_motion")
NORMALIZER_DECAY = 0.99
_Y = 1  # the y axis (height) of mesh coordinates


# ----------------------------------------------------------------------------------------------------------
# Elementary losses (the original's `losses.py`)
# ----------------------------------------------------------------------------------------------------------


def mse_loss(y_pred: Array, y_true: Array) -> Array:
    """mean((y_pred - y_true)^2) over all elements."""
    return jnp.mean(jnp.square(y_pred - y_true))


def motion_loss(y_pred: Array, y_true: Array) -> Array:
    """MSE of the frame-to-frame differences along axis 1. y [B, S, ...]."""
    mv_true = y_true[:, 1:] - y_true[:, :-1]
    mv_pred = y_pred[:, 1:] - y_pred[:, :-1]
    return jnp.mean(jnp.square(mv_pred - mv_true))


def motion_reg_loss(e: Array) -> Array:
    """Scale-invariant temporal smoothness of the implicit emotion: mean((e[s+1]-e[s])^2) / mean(e^2)."""
    mv = e[:, 1:] - e[:, :-1]
    return jnp.mean(jnp.square(mv)) / jnp.mean(jnp.square(e))


def coeffs_to_pose(coeffs: Array, shapes_matrix: Array, shapes_mean: Array) -> Array:
    """PCA reconstruction. coeffs [..., K], shapes_matrix [K, V, 3], shapes_mean [V, 3] -> [..., V, 3]."""
    k, v = shapes_matrix.shape[:2]
    pose = jnp.dot(coeffs, shapes_matrix.reshape(k, v * 3))
    return pose.reshape(coeffs.shape[:-1] + (v, 3)) + shapes_mean


def y_diff_basis(
    shapes_matrix: np.ndarray, shapes_mean: np.ndarray, upper: Sequence[int], lower: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Basis for y(upper_i) - y(lower_i) as an affine function of the coeffs: (basis [K, n], offset [n])."""
    m = np.asarray(shapes_matrix, np.float32)
    mu = np.asarray(shapes_mean, np.float32)
    up, lo = np.asarray(upper, np.int64), np.asarray(lower, np.int64)
    return (m[:, up, _Y] - m[:, lo, _Y]).astype(np.float32), (mu[up, _Y] - mu[lo, _Y]).astype(np.float32)


def y_diff(coeffs: Array, basis: Array, offset: Array) -> Array:
    """y(upper_i) - y(lower_i) of the reconstructed pose. coeffs [..., K] -> [..., n]."""
    return jnp.dot(coeffs, basis) + offset


def eye_open_mask(eye_dist: Array, threshold: float) -> Array:
    """Per sample: mean over (seq, eye pairs) of upper-lid y - lower-lid y > threshold. eye_dist [B, S, n] -> [B]."""
    return jax.lax.stop_gradient(jnp.mean(eye_dist, axis=(1, 2)) > threshold)


def lip_dist_loss(
    dist_pred: Array, dist_true: Array, exp_scale: float, sample_weights: Array | None = None
) -> Array:
    """Lip-distance loss on upper-lower lip y distances [B, S, n] (docs/training.md "Losses").

    w = exp(-exp_scale * max(d_true, 0)); mean of (w*d_pred - w*d_true)^2 times the per-sample weight.
    """
    w = jnp.exp(-exp_scale * jnp.maximum(dist_true, 0.0))
    loss = jnp.square(w * dist_pred - w * dist_true)
    if sample_weights is not None:
        loss = loss * sample_weights[:, None, None]
    return jnp.mean(loss)


def lip_size_loss(
    upper_pred: Array,
    upper_true: Array,
    lower_pred: Array,
    lower_true: Array,
    sample_weights: Array | None = None,
) -> Array:
    """Lip-thickness loss: mean[(u_pred - u)^2 + (l_pred - l)^2] (x per-sample weight). Each [B, S, n]."""
    loss = jnp.square(upper_pred - upper_true) + jnp.square(lower_pred - lower_true)
    if sample_weights is not None:
        loss = loss * sample_weights[:, None, None]
    return jnp.mean(loss)


def vol_stab_reg_loss(x: Array, y_pred: Array, exp_scale: float) -> Array:
    """Penalise predicted motion in quiet audio. x [B, S, N] raw audio, y_pred [B, S, D] (last 4 = eyes, ignored).

    w_b = exp(-exp_scale * mean|x_b|); loss = mean_b(w_b * mean((y[s+1] - y[s])[..., :-4]^2)).
    """
    mean_volume = jnp.mean(jnp.abs(x), axis=(-1, -2))
    volume_weight = jnp.exp(-exp_scale * mean_volume)
    mv = y_pred[:, 1:, :-4] - y_pred[:, :-1, :-4]
    return jnp.mean(volume_weight * jnp.mean(jnp.square(mv), axis=(1, 2)))


def _masked_mean(values: Array, sample_mask: Array) -> Array:
    """Mean of `values` [B, ...] over the samples where sample_mask [B] is set.

    The original drops the other samples and averages what is left (NaN when none are left); here an empty
    selection gives 0 so one unlucky batch cannot poison the parameters.
    """
    m = sample_mask.astype(values.dtype).reshape((-1,) + (1,) * (values.ndim - 1))
    per_sample = int(np.prod(values.shape[1:]))
    count = jnp.sum(sample_mask.astype(values.dtype)) * per_sample
    return jnp.sum(values * m) / jnp.maximum(count, 1.0)


def phoneme_loss(
    logits_all: Sequence[Array],
    probs_all: Sequence[Array],
    masks_all: Sequence[Array],
    class_weights_all: Sequence[Array | None] | None = None,
) -> Array:
    """Soft-target weighted cross-entropy summed over languages.

    Per language: logits [B, S, 25, P], target probabilities [B, S, 25, >=P] (padding trimmed to P), sample
    mask [B] (lang == this language), class weights [P]. Row loss -sum_c w_c p_c log softmax(z)_c, averaged
    over the rows of the selected samples (PyTorch "mean" with probability targets divides by the row count).
    """
    if class_weights_all is None:
        class_weights_all = [None] * len(logits_all)
    total = jnp.zeros((), jnp.float32)
    for logits, probs, mask, weights in zip(logits_all, probs_all, masks_all, class_weights_all):
        p = probs[..., : logits.shape[-1]]
        logp = jax.nn.log_softmax(logits, axis=-1)
        if weights is not None:
            logp = logp * weights
        rows = -jnp.sum(p * logp, axis=-1)  # [B, S, 25]
        total = total + _masked_mean(rows, mask)
    return total


def phoneme_motion_loss(logits_all: Sequence[Array], probs_all: Sequence[Array], masks_all: Sequence[Array]) -> Array:
    """The motion loss between predicted logits and target probabilities along S, summed over languages."""
    total = jnp.zeros((), jnp.float32)
    for logits, probs, mask in zip(logits_all, probs_all, masks_all):
        p = probs[..., : logits.shape[-1]]
        d = (logits[:, 1:] - logits[:, :-1]) - (p[:, 1:] - p[:, :-1])
        total = total + _masked_mean(jnp.square(d), mask)
    return total


def r2(y_pred: Array, y_true: Array) -> Array:
    """1 - mean((y_pred - y)^2) / mean((mean_{batch,seq}(y) - y)^2)."""
    y_mean = jnp.mean(y_true, axis=(0, 1))
    return 1.0 - jnp.mean(jnp.square(y_pred - y_true)) / jnp.mean(jnp.square(y_mean - y_true))


# ----------------------------------------------------------------------------------------------------------
# Annealed stddev normalisation (the original's LossNormalizer("stddev", 0.99), as explicit state)
# ----------------------------------------------------------------------------------------------------------


def init_normalizer_state(names: Sequence[str] = NORMALIZED_TERMS) -> dict[str, Array]:
    """{name: [num, den]} all zeros, float32. Carry it in the train state."""
    return {name: jnp.zeros((2,), jnp.float32) for name in names}


def _normalizer_update(state: Array, value: Array, decay: float) -> Array:
    value = jax.lax.stop_gradient(value)
    return jnp.stack([state[0] * decay + value * value, state[1] * decay + 1.0])


def normalized(value: Array, state: Array, exponent: Array | float, decay: float = NORMALIZER_DECAY) -> Array:
    """(value / rho) ** exponent with rho = sqrt(num'/den') + 1e-8 from the state updated with this value."""
    num, den = _normalizer_update(state, value, decay)
    rho = jnp.sqrt(num / den) + 1e-8
    return (value / rho) ** exponent


def next_normalizer_state(
    state: Mapping[str, Array], terms: Mapping[str, Array], decay: float = NORMALIZER_DECAY
) -> dict[str, Array]:
    """Fold this step's raw term values ("losses/<name>" in `terms`) into the normaliser state."""
    out = dict(state)
    for name in state:
        key = f"losses/{name}"
        if key in terms:
            out[name] = _normalizer_update(state[name], terms[key], decay)
    return out


def loss_exponent(global_step: Array | int, num_batches: int, num_epochs: int) -> Array:
    """p = 1 - global_step / (num_batches * num_epochs): decays linearly from 1 towards 0."""
    return 1.0 - jnp.asarray(global_step, jnp.float32) / float(num_batches * num_epochs)


# ----------------------------------------------------------------------------------------------------------
# Configuration and geometry
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RegressionLossConfig:
    """Loss weights of the regression train config (None switches a term off)."""

    mse_alpha: float | None = 1.0
    motion_alpha: float | None = 10.0
    emo_reg_alpha: float | None = 1.0
    lip_dist_alpha: float | None = 100.0
    lip_dist_exp: float = 1.0
    lip_size_alpha: float | None = None
    vol_stab_reg_alpha: float | None = 100.0
    vol_stab_reg_exp: float = 5000.0
    phoneme_alpha: float | None = 0.1
    phoneme_motion_alpha: float | None = 0.05
    remove_closing_eye: bool = True
    eye_dist_threshold: float = 0.35

    @classmethod
    def from_train_config(cls, cfg: Any) -> "RegressionLossConfig":
        """Read the original's keys (LOSS_*_ALPHA, LOSS_LIP_DIST_EXP, REMOVE_CLOSING_EYE, ...) from a mapping."""

        def get(key: str, default: Any) -> Any:
            try:
                return cfg[key]
            except (KeyError, AttributeError):
                return default

        def opt_float(key: str, default: float | None) -> float | None:
            v = get(key, default)
            if v is None:
                return None
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"train config [{key}]: expected a number or None, found {v!r}")
            return float(v)

        d = cls()
        return cls(
            mse_alpha=opt_float("LOSS_MSE_ALPHA", d.mse_alpha),
            motion_alpha=opt_float("LOSS_MOTION_ALPHA", d.motion_alpha),
            emo_reg_alpha=opt_float("LOSS_EMO_REG_ALPHA", d.emo_reg_alpha),
            lip_dist_alpha=opt_float("LOSS_LIP_DIST_ALPHA", d.lip_dist_alpha),
            lip_dist_exp=float(opt_float("LOSS_LIP_DIST_EXP", d.lip_dist_exp)),
            lip_size_alpha=opt_float("LOSS_LIP_SIZE_ALPHA", d.lip_size_alpha),
            vol_stab_reg_alpha=opt_float("LOSS_VOL_STAB_REG_ALPHA", d.vol_stab_reg_alpha),
            vol_stab_reg_exp=float(opt_float("LOSS_VOL_STAB_REG_EXP", d.vol_stab_reg_exp)),
            phoneme_alpha=opt_float("LOSS_PHONEME_ALPHA", d.phoneme_alpha),
            phoneme_motion_alpha=opt_float("LOSS_PHONEME_MOTION_ALPHA", d.phoneme_motion_alpha),
            remove_closing_eye=bool(get("REMOVE_CLOSING_EYE", d.remove_closing_eye)),
            eye_dist_threshold=float(opt_float("EYE_DIST_THRESHOLD", d.eye_dist_threshold)),
        )


def _index_list(verts: Mapping[str, Any], key: str, source: str, num_verts: int) -> list[int]:
    if key not in verts:
        raise DataError(f"{source} [{key}]: expected a list of vertex indices, found no such key")
    idx = verts[key]
    if not isinstance(idx, (list, tuple)) or not all(isinstance(i, (int, np.integer)) for i in idx):
        raise DataError(f"{source} [{key}]: expected a list of vertex indices, found {idx!r}")
    bad = [int(i) for i in idx if not 0 <= int(i) < num_verts]
    if bad:
        raise DataError(f"{source} [{key}]: expected indices in [0, {num_verts}), found {bad[:5]}")
    return [int(i) for i in idx]


def _pair(verts: Mapping[str, Any], up: str, lo: str, source: str, num_verts: int) -> tuple[list[int], list[int]]:
    a, b = _index_list(verts, up, source, num_verts), _index_list(verts, lo, source, num_verts)
    if len(a) != len(b):
        raise DataError(f"{source} [{up}/{lo}]: expected lists of equal length, found {len(a)} and {len(b)}")
    return a, b


def prepare_loss_geometry(
    shapes_matrix: np.ndarray,
    shapes_mean: np.ndarray,
    lip_dist_verts: Mapping[str, Any] | None = None,
    lip_size_verts: Mapping[str, Any] | None = None,
    eye_dist_verts: Mapping[str, Any] | None = None,
    source: str = "vertex list",
) -> dict[str, dict[str, np.ndarray]]:
    """Gathered y-difference bases for the vertex-space losses of actor 0's skin PCA.

    shapes_matrix [Ks, Vs, 3], shapes_mean [Vs, 3]; lists as in the dataset's JSON files:
    lip_dist {"upper": [...], "lower": [...]}, lip_size {"upper_lip": {"top", "bottom"}, "lower_lip": {...}},
    eye_dist {"upper": [...], "lower": [...]}. Missing lists leave their entry out (the term is inactive).
    Returns {"lip_dist" | "eye_dist" | "lip_size_upper" | "lip_size_lower": {"basis": [Ks, n], "offset": [n]}}.
    """
    m = np.asarray(shapes_matrix)
    if m.ndim != 3 or m.shape[2] != 3:
        raise DataError(f"{source}: shapes_matrix expected [K, V, 3], found {m.shape}")
    if np.asarray(shapes_mean).shape != m.shape[1:]:
        raise DataError(f"{source}: shapes_mean expected {m.shape[1:]}, found {np.asarray(shapes_mean).shape}")
    nv = m.shape[1]
    geo: dict[str, dict[str, np.ndarray]] = {}

    def add(name: str, up: list[int], lo: list[int]) -> None:
        basis, offset = y_diff_basis(m, shapes_mean, up, lo)
        geo[name] = {"basis": basis, "offset": offset}

    if lip_dist_verts is not None:
        add("lip_dist", *_pair(lip_dist_verts, "upper", "lower", f"{source} (lip_dist)", nv))
    if eye_dist_verts is not None:
        add("eye_dist", *_pair(eye_dist_verts, "upper", "lower", f"{source} (eye_dist)", nv))
    if lip_size_verts is not None:
        for part in ("upper_lip", "lower_lip"):
            if not isinstance(lip_size_verts.get(part), Mapping):
                raise DataError(f"{source} (lip_size) [{part}]: expected {{top, bottom}}, found {lip_size_verts.get(part)!r}")
            add(f"lip_size_{part.split('_')[0]}", *_pair(lip_size_verts[part], "top", "bottom", f"{source} (lip_size.{part})", nv))
    return geo


def emotion_sample_weights(emotion_names: Sequence[str], weight_map: Mapping[str, float] | None) -> np.ndarray | None:
    """Per-sample weights weight_map.get(name, 1.0) (None when the map is None), float32 [B]."""
    if weight_map is None:
        return None
    return np.asarray([float(weight_map.get(n, 1.0)) for n in emotion_names], np.float32)


def phoneme_class_weights(num_phonemes: int, sil_index: int, sil_weight: float) -> np.ndarray:
    """Class weights of one language: 1 everywhere, LOSS_PHONEME_SIL_WEIGHT at the "[SIL]" token. float32 [P]."""
    if not 0 <= sil_index < num_phonemes:
        raise DataError(f"phoneme vocabulary [[SIL]]: expected an index in [0, {num_phonemes}), found {sil_index}")
    w = np.ones(num_phonemes, np.float32)
    w[sil_index] = sil_weight
    return w


def language_masks(sample_langs: Sequence[str], langs: Sequence[str]) -> list[np.ndarray]:
    """One bool [B] mask per phoneme language (PHONEME_FORCING_LANGS order): sample's lang == that language.
    Samples of other languages ("unsupported") are in no mask, so they leave the phoneme losses out."""
    return [np.asarray([sl == lang for sl in sample_langs], bool) for lang in langs]


# ----------------------------------------------------------------------------------------------------------
# The combined regression loss
# ----------------------------------------------------------------------------------------------------------


def regression_loss(
    y_pred: Array,
    y_true: Array,
    implicit_emo: Array,
    audio: Array,
    cfg: RegressionLossConfig,
    num_shapes_skin: int,
    norm_state: Mapping[str, Array],
    exponent: Array | float,
    geometry: Mapping[str, Mapping[str, Array]] | None = None,
    lip_dist_weights: Array | None = None,
    lip_size_weights: Array | None = None,
    phoneme_logits: Sequence[Array] | None = None,
    phoneme_targets: Array | None = None,
    phoneme_masks: Sequence[Array] | None = None,
    phoneme_class_weights: Sequence[Array | None] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """Total regression loss and its named raw terms.

    y_pred, y_true [B, S, D] (skin coeffs first, eyes last); implicit_emo [B, S, 16]; audio [B, S, N] raw
    (not norm-factor divided); norm_state from `init_normalizer_state`; exponent from `loss_exponent`;
    geometry from `prepare_loss_geometry`; phoneme logits per language [B, S, 25, P_l], targets
    [B, S, 25, Pmax], masks per language [B] (sample's lang == this language).
    Returns (total, {"loss", "r2", "losses/<term>"...}); raw terms are un-normalised, as logged by the original.
    Update the normaliser afterwards with `next_normalizer_state(norm_state, terms)`.
    """
    geometry = geometry or {}
    terms: dict[str, Array] = {}
    total = jnp.zeros((), jnp.float32)

    if cfg.remove_closing_eye and "eye_dist" in geometry:
        g = geometry["eye_dist"]
        mask = eye_open_mask(y_diff(y_true[..., :num_shapes_skin], g["basis"], g["offset"]), cfg.eye_dist_threshold)
        m = mask.astype(y_pred.dtype)[:, None, None]
        y_pred = y_pred * m
        y_true = y_true * m

    def add_normalized(name: str, alpha: float, value: Array) -> None:
        nonlocal total
        terms[f"losses/{name}"] = value
        total = total + alpha * normalized(value, norm_state[name], exponent)

    def add_plain(name: str, alpha: float, value: Array) -> None:
        nonlocal total
        terms[f"losses/{name}"] = value
        total = total + alpha * value

    if cfg.mse_alpha is not None:
        add_normalized("mse", cfg.mse_alpha, mse_loss(y_pred, y_true))
    if cfg.motion_alpha is not None:
        add_normalized("motion", cfg.motion_alpha, motion_loss(y_pred, y_true))
    if cfg.emo_reg_alpha is not None:
        add_normalized("emo_reg", cfg.emo_reg_alpha, motion_reg_loss(implicit_emo))

    skin_pred, skin_true = y_pred[..., :num_shapes_skin], y_true[..., :num_shapes_skin]
    if cfg.lip_dist_alpha is not None and "lip_dist" in geometry:
        g = geometry["lip_dist"]
        value = lip_dist_loss(
            y_diff(skin_pred, g["basis"], g["offset"]),
            y_diff(skin_true, g["basis"], g["offset"]),
            cfg.lip_dist_exp,
            lip_dist_weights,
        )
        add_plain("lip_dist", cfg.lip_dist_alpha, value)
    if cfg.lip_size_alpha is not None and "lip_size_upper" in geometry:
        gu, gl = geometry["lip_size_upper"], geometry["lip_size_lower"]
        value = lip_size_loss(
            y_diff(skin_pred, gu["basis"], gu["offset"]),
            y_diff(skin_true, gu["basis"], gu["offset"]),
            y_diff(skin_pred, gl["basis"], gl["offset"]),
            y_diff(skin_true, gl["basis"], gl["offset"]),
            lip_size_weights,
        )
        add_plain("lip_size", cfg.lip_size_alpha, value)
    if cfg.vol_stab_reg_alpha is not None:
        add_plain("vol_stab_reg", cfg.vol_stab_reg_alpha, vol_stab_reg_loss(audio, y_pred, cfg.vol_stab_reg_exp))

    use_phonemes = phoneme_logits is not None and phoneme_targets is not None and len(phoneme_logits) > 0
    if use_phonemes:
        if phoneme_masks is None or len(phoneme_masks) != len(phoneme_logits):
            raise ValueError("regression_loss: phoneme_masks must give one [B] mask per phoneme language")
        targets = [phoneme_targets] * len(phoneme_logits)
        if cfg.phoneme_alpha is not None:
            value = phoneme_loss(phoneme_logits, targets, phoneme_masks, phoneme_class_weights)
            add_normalized("phoneme", cfg.phoneme_alpha, value)
        if cfg.phoneme_motion_alpha is not None:
            value = phoneme_motion_loss(phoneme_logits, targets, phoneme_masks)
            add_normalized("phoneme_motion", cfg.phoneme_motion_alpha, value)

    terms["loss"] = total
    terms["r2"] = jax.lax.stop_gradient(r2(y_pred, y_true))
    return total, terms
