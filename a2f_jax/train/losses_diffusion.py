"""Losses of the diffusion network `diffusion_rnn` (docs/training.md "Losses"), as pure jnp functions.

Beyond the original (batch 1 only): every term is computed per batch item over that item's real
frames (`mask` [B, T], 1 = real frame) and returned as [B]. For an unpadded item the value is exactly
the original's (a mean over all its elements), so summing the [B] values over a padded batch gives the
same loss and gradients as separate batch-1 steps. Fully padded items contribute 0.

Term names are the original's TensorBoard scalar names: diffusion, lip_dist, velocity, expression_smooth.
Per-actor constants (skin scale/translate and PCA basis) follow each item's actor, as the original does
for its one item; the lip list and the upper-face mask come from actor 0, as in the original.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from a2f_jax.errors import ConfigError, DataError
from a2f_jax.models.gaussian_diffusion import huber, original_timesteps, q_sample

Array = jax.Array
_Y = 1  # y axis (height) of mesh coordinates


# ----------------------------------------------------------------------------------------------------------
# Constants (built once on the host)
# ----------------------------------------------------------------------------------------------------------


@flax.struct.dataclass
class DiffusionLossConstants:
    """Arrays the auxiliary losses need; a pytree, so pass it to jitted steps as an argument.

    scale_skin [A], translate_skin [A, 3]: per-actor rescaling (rescaled → mesh units).
    pca_basis [A, 3Vs, K]: skin PCA basis E (shapes_matrix reshaped and transposed; zero-padded to the
    largest K over actors), pca_mean [A, 3Vs]: shapes_mean flattened.
    lip_basis [A, K, P], lip_offset [A, P]: y(upper) − y(lower) of the PCA reconstruction is linear in the
    coefficients, so these gathered rows give the lip distances without rebuilding the mesh. None without
    a lip list. lip_upper/lip_lower [P] int: vertex indices (for the GT distances).
    upper_face_mask [Vs]: the soft mask m_v (None without an eye list).
    """

    scale_skin: Array
    translate_skin: Array
    pca_basis: Array
    pca_mean: Array
    lip_basis: Array | None
    lip_offset: Array | None
    lip_upper: Array | None
    lip_lower: Array | None
    upper_face_mask: Array | None
    skin_dim: int = flax.struct.field(pytree_node=False, default=0)
    tongue_dim: int = flax.struct.field(pytree_node=False, default=0)
    jaw_dim: int = flax.struct.field(pytree_node=False, default=0)
    eye_dim: int = flax.struct.field(pytree_node=False, default=0)


def _vertex_list(verts: Mapping[str, Any], key: str, source: str, num_verts: int) -> np.ndarray:
    if key not in verts:
        raise DataError(f"{source} [{key}]: expected a list of vertex indices, found no such key")
    idx = np.asarray(verts[key], dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= num_verts):
        raise DataError(
            f"{source} [{key}]: expected vertex indices in [0, {num_verts - 1}], found {idx.min()}..{idx.max()}"
        )
    return idx


def upper_face_mask(shapes_mean: np.ndarray, eye_dist_verts: Mapping[str, Any], source: str = "eye_dist") -> np.ndarray:
    """Soft upper/front-face mask m_v [Vs] from the unscaled skin mean [Vs, 3] and the eye-lid list.

    p1, p2 = mean[lower[0]], mean[lower[1]]; y_thr = min(p1.y, p2.y); d = |p1 − p2|;
    z_thr = (p1.z + p2.z)/2 − d; k = d/2; m_v = σ(k·(y_v − y_thr))·σ(k·(z_v − z_thr)).
    """
    mean = np.asarray(shapes_mean, np.float64).reshape(-1, 3)
    lower = _vertex_list(eye_dist_verts, "lower", source, mean.shape[0])
    if lower.size < 2:
        raise DataError(f"{source} [lower]: expected at least 2 vertex indices, found {lower.size}")
    p1, p2 = mean[lower[0]], mean[lower[1]]
    y_thr = min(p1[1], p2[1])
    dist = float(np.linalg.norm(p1 - p2))
    z_thr = (p1[2] + p2[2]) / 2 - dist
    sharp = dist / 2
    w = 1.0 / (1.0 + np.exp(sharp * (y_thr - mean[:, 1]))) / (1.0 + np.exp(sharp * (z_thr - mean[:, 2])))
    return w.astype(np.float32)


def build_loss_constants(
    *,
    skin_dim: int,
    tongue_dim: int,
    jaw_dim: int,
    eye_dim: int,
    scale_skin: Sequence[float],
    translate_skin: Sequence[Sequence[float]],
    shapes_matrix: Sequence[np.ndarray],
    shapes_mean: Sequence[np.ndarray],
    lip_dist_verts: Mapping[str, Any] | None = None,
    eye_dist_verts: Mapping[str, Any] | None = None,
    source: str = "skin_pca_shapes",
) -> DiffusionLossConstants:
    """Host-side constants. Per actor: shapes_matrix [K_a, Vs, 3], shapes_mean [Vs, 3] (unscaled units).

    `lip_dist_verts` ({"upper": [...], "lower": [...]}) and `eye_dist_verts` ({"lower": [...]}) are actor 0's.
    """
    num_actors = len(shapes_matrix)
    if not (len(shapes_mean) == len(scale_skin) == len(translate_skin) == num_actors) or num_actors == 0:
        raise ConfigError(
            f"{source}: expected one shapes_matrix, shapes_mean, scale_skin and translate_skin per actor, found "
            f"{len(shapes_matrix)}, {len(shapes_mean)}, {len(scale_skin)}, {len(translate_skin)}"
        )
    vs = skin_dim // 3
    k_max = max(int(np.asarray(m).shape[0]) for m in shapes_matrix)
    basis = np.zeros((num_actors, 3 * vs, k_max), np.float32)
    means = np.zeros((num_actors, 3 * vs), np.float32)
    for a, (m, mu) in enumerate(zip(shapes_matrix, shapes_mean)):
        m = np.asarray(m, np.float32)
        mu = np.asarray(mu, np.float32)
        if m.ndim != 3 or m.shape[1:] != (vs, 3) or mu.shape != (vs, 3):
            raise DataError(
                f"{source} (actor {a}): expected shapes_matrix [K, {vs}, 3] and shapes_mean [{vs}, 3], "
                f"found {m.shape} and {mu.shape}"
            )
        basis[a, :, : m.shape[0]] = m.reshape(m.shape[0], -1).T
        means[a] = mu.reshape(-1)
    lip_basis = lip_offset = lip_up = lip_lo = None
    if lip_dist_verts is not None:
        up = _vertex_list(lip_dist_verts, "upper", "lip_dist_verts", vs)
        lo = _vertex_list(lip_dist_verts, "lower", "lip_dist_verts", vs)
        if up.size != lo.size or up.size == 0:
            raise DataError(
                f"lip_dist_verts: expected non-empty 'upper' and 'lower' lists of equal length, found {up.size} and {lo.size}"
            )
        rows_up, rows_lo = 3 * up + _Y, 3 * lo + _Y
        lip_basis = np.transpose(basis[:, rows_up, :] - basis[:, rows_lo, :], (0, 2, 1))  # [A, K, P]
        lip_offset = means[:, rows_up] - means[:, rows_lo]  # [A, P]
        lip_up, lip_lo = up.astype(np.int32), lo.astype(np.int32)
    mask = None
    if eye_dist_verts is not None:
        mask = upper_face_mask(np.asarray(shapes_mean[0]), eye_dist_verts)
    return DiffusionLossConstants(
        scale_skin=jnp.asarray(np.asarray(scale_skin, np.float32).reshape(num_actors)),
        translate_skin=jnp.asarray(np.asarray(translate_skin, np.float32).reshape(num_actors, 3)),
        pca_basis=jnp.asarray(basis),
        pca_mean=jnp.asarray(means),
        lip_basis=None if lip_basis is None else jnp.asarray(lip_basis),
        lip_offset=None if lip_offset is None else jnp.asarray(lip_offset),
        lip_upper=None if lip_up is None else jnp.asarray(lip_up),
        lip_lower=None if lip_lo is None else jnp.asarray(lip_lo),
        upper_face_mask=None if mask is None else jnp.asarray(mask),
        skin_dim=skin_dim,
        tongue_dim=tongue_dim,
        jaw_dim=jaw_dim,
        eye_dim=eye_dim,
    )


def channel_weights(skin_dim: int, tongue_dim: int, jaw_dim: int, eye_dim: int, tongue_weight: float, jaw_weight: float) -> np.ndarray:
    """w [C]: 1 on skin and eye dims, TONGUE_WEIGHT on tongue dims, JAW_WEIGHT on jaw dims."""
    return np.concatenate(
        [
            np.ones(skin_dim, np.float32),
            np.full(tongue_dim, tongue_weight, np.float32),
            np.full(jaw_dim, jaw_weight, np.float32),
            np.ones(eye_dim, np.float32),
        ]
    )


# ----------------------------------------------------------------------------------------------------------
# Per-item masked terms; all inputs [B, T, ...], mask [B, T] (None = all real); outputs [B]
# ----------------------------------------------------------------------------------------------------------


def _frame_mask(x: Array, mask: Array | None) -> Array:
    if mask is None:
        return jnp.ones(x.shape[:2], x.dtype)
    return mask.astype(x.dtype)


def _pair_mask(m: Array) -> Array:
    """1 where both frames t and t+1 are real: [B, T − 1]."""
    return m[:, 1:] * m[:, :-1]


def _masked_item_mean(values: Array, m: Array, per_frame: int) -> Array:
    """Sum of values [B, T', ...] over real frames divided by (real frames · per_frame elements)."""
    summed = jnp.sum(values.reshape(values.shape[0], values.shape[1], -1), axis=-1)
    count = jnp.sum(m, axis=1) * per_frame
    return jnp.sum(summed * m, axis=1) / jnp.maximum(count, 1.0)


def diffusion_loss(x0_pred: Array, x0: Array, weights: Array | np.ndarray, mask: Array | None = None) -> Array:
    """Smooth-L1 (δ = 1) between w ⊙ x0 and w ⊙ x̂0, mean over each item's real frames and channels. → [B]."""
    w = jnp.asarray(weights, x0.dtype)
    m = _frame_mask(x0, mask)
    return _masked_item_mean(huber(x0 * w - x0_pred * w), m, x0.shape[-1])


def velocity_loss(x0_pred: Array, x0: Array, skin_dim: int, mask: Array | None = None) -> Array:
    """Motion loss on the skin slice (rescaled space): mean of (Δx̂0 − Δx0)² over real frame pairs. → [B]."""
    m = _pair_mask(_frame_mask(x0, mask))
    p, g = x0_pred[..., :skin_dim], x0[..., :skin_dim]
    dv = (p[:, 1:] - p[:, :-1]) - (g[:, 1:] - g[:, :-1])
    return _masked_item_mean(jnp.square(dv), m, skin_dim)


def expression_smooth_loss(x0_pred: Array, upper_face_mask: Array, skin_dim: int, mask: Array | None = None) -> Array:
    """mean over (real pairs, Vs, 3) of m_v·(x̂0[t+1] − x̂0[t])² on the rescaled skin. → [B]."""
    m = _pair_mask(_frame_mask(x0_pred, mask))
    b, t = x0_pred.shape[:2]
    skin = x0_pred[..., :skin_dim].reshape(b, t, skin_dim // 3, 3)
    mv = skin[:, 1:] - skin[:, :-1]
    weighted = jnp.square(mv) * upper_face_mask[:, None]
    return _masked_item_mean(weighted, m, skin_dim)


def lip_dist_loss(
    x0_pred: Array,
    x0: Array,
    consts: DiffusionLossConstants,
    actor_index: Array,
    exp_scale: float,
    mask: Array | None = None,
) -> Array:
    """Lip-distance loss in mesh units, the prediction projected onto the actor's skin PCA subspace. → [B].

    v = x·scale + translate; c = (v̂ − μ)·E; the projected prediction's lip distances are c·lip_basis + lip_offset;
    d from the GT vertices; w = exp(−κ·max(d, 0)); mean over real frames and pairs of (w·d̂ − w·d)².
    """
    if consts.lip_basis is None:
        return jnp.zeros(x0.shape[:1], x0.dtype)
    m = _frame_mask(x0, mask)
    b, t = x0.shape[:2]
    vs = consts.skin_dim // 3
    scale = consts.scale_skin[actor_index][:, None, None, None]  # [B, 1, 1, 1]
    translate = consts.translate_skin[actor_index][:, None, None, :]  # [B, 1, 1, 3]
    pred_v = (x0_pred[..., : consts.skin_dim].reshape(b, t, vs, 3) * scale + translate).reshape(b, t, 3 * vs)
    gt_v = x0[..., : consts.skin_dim].reshape(b, t, vs, 3) * scale + translate
    if consts.pca_basis.shape[0] == 1:
        coeffs = jnp.einsum("btv,vk->btk", pred_v - consts.pca_mean[0], consts.pca_basis[0])
        d_pred = jnp.einsum("btk,kp->btp", coeffs, consts.lip_basis[0]) + consts.lip_offset[0]
    else:
        basis = consts.pca_basis[actor_index]  # [B, 3Vs, K]
        coeffs = jnp.einsum("btv,bvk->btk", pred_v - consts.pca_mean[actor_index][:, None], basis)
        d_pred = jnp.einsum("btk,bkp->btp", coeffs, consts.lip_basis[actor_index]) + consts.lip_offset[actor_index][:, None]
    d_true = gt_v[:, :, consts.lip_upper, _Y] - gt_v[:, :, consts.lip_lower, _Y]  # [B, T, P]
    w = jnp.exp(-exp_scale * jnp.maximum(d_true, 0.0))
    return _masked_item_mean(jnp.square(w * d_pred - w * d_true), m, d_true.shape[-1])


def diffusion_losses(
    x0_pred: Array,
    x0: Array,
    consts: DiffusionLossConstants,
    actor_vec: Array,
    *,
    tongue_weight: float,
    jaw_weight: float,
    lip_dist_alpha: float | None,
    lip_dist_exp: float,
    velocity_alpha: float | None,
    exp_smooth_alpha: float | None,
    mask: Array | None = None,
) -> dict[str, Array]:
    """All terms per item [B] and "total" = diffusion + Σ α·term (a None α or missing list drops a term).

    x0_pred, x0 [B, T, C] rescaled; actor_vec [B, A] one-hot (selects each item's scale/translate/PCA).
    """
    w = channel_weights(consts.skin_dim, consts.tongue_dim, consts.jaw_dim, consts.eye_dim, tongue_weight, jaw_weight)
    if w.shape[0] != x0.shape[-1]:
        raise ValueError(f"diffusion_losses: expected C = {w.shape[0]} channels, found {x0.shape[-1]}")
    terms = {"diffusion": diffusion_loss(x0_pred, x0, w, mask)}
    total = terms["diffusion"]
    if lip_dist_alpha is not None and consts.lip_basis is not None:
        actor_index = jnp.argmax(actor_vec, axis=-1)
        terms["lip_dist"] = lip_dist_loss(x0_pred, x0, consts, actor_index, lip_dist_exp, mask)
        total = total + lip_dist_alpha * terms["lip_dist"]
    if velocity_alpha is not None:
        terms["velocity"] = velocity_loss(x0_pred, x0, consts.skin_dim, mask)
        total = total + velocity_alpha * terms["velocity"]
    if exp_smooth_alpha is not None and consts.upper_face_mask is not None:
        terms["expression_smooth"] = expression_smooth_loss(x0_pred, consts.upper_face_mask, consts.skin_dim, mask)
        total = total + exp_smooth_alpha * terms["expression_smooth"]
    terms["total"] = total
    return terms


# ----------------------------------------------------------------------------------------------------------
# One training evaluation (the original's `training_losses` + auxiliary losses)
# ----------------------------------------------------------------------------------------------------------


def sample_timesteps(key: Array, batch: int, num_timesteps: int) -> Array:
    """Uniform spaced indices [B] (the original's "uniform" sampler; one draw per item, so batch-1 semantics hold)."""
    return jax.random.randint(key, (batch,), 0, num_timesteps, dtype=jnp.int32)


def training_losses(
    model_fn: Any,
    diffusion: Any,
    x0: Array,
    k: Array,
    noise: Array,
    consts: DiffusionLossConstants,
    actor_vec: Array,
    *,
    mask: Array | None = None,
    **weights: Any,
) -> tuple[dict[str, Array], Array]:
    """x_t = q_sample(x0, k, ε); x̂0 = model_fn(x_t, t_original [B]); all loss terms per item.

    k [B] spaced indices (all steps in training: respacing ""), noise ε like x0. `weights` are the keyword
    arguments of `diffusion_losses` (tongue_weight, jaw_weight, lip_dist_alpha, lip_dist_exp, velocity_alpha,
    exp_smooth_alpha). Returns (terms, x̂0).
    """
    x_t = q_sample(diffusion, x0, k, noise)
    x0_pred = model_fn(x_t, original_timesteps(diffusion, k, x0.shape[0]))
    terms = diffusion_losses(x0_pred, x0, consts, actor_vec, mask=mask, **weights)
    return terms, x0_pred
