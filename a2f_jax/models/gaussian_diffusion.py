"""Gaussian diffusion of the diffusion network: schedules, respacing, q_sample, DDPM and DDIM steps.

Follows the original (motion-diffusion-model / guided-diffusion, as configured by the trainer):
x0 prediction (START_X), fixed-small variance (the posterior variance, log clipped at index 0),
no timestep rescaling, no clipping of x̂0 at inference. Tables are NumPy float64 as in the original
and cast to float32 when taken, like its `_extract_into_tensor(...).float()`.

Indices: a `Diffusion` built with a respacing works on *spaced* indices k = 0..K−1;
`timestep_map[k]` is the original index the network sees (its 1000-way one-hot).

Sampler functions take a `denoise_fn(x_t [B, T, C], t_orig [B] int32, slot: int, carry) -> (x̂0, carry)`
so the caller can carry per-step state (the GRU latents of the streaming graph, slot = position of the
step's original timestep in ascending order). All loops are Python loops over the few spaced steps,
so a jitted or exported graph unrolls them (2 steps for respacing "2").
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from a2f_jax.errors import ConfigError

DenoiseFn = Callable[[jax.Array, jax.Array, int, Any], tuple[jax.Array, Any]]


# ---------------------------------------------------------------------------------------------------
# Schedules and respacing (host-side NumPy)
# ---------------------------------------------------------------------------------------------------


def beta_schedule(name: str, num_steps: int) -> np.ndarray:
    """β [num_steps] float64 for "linear" or "cosine" (guided-diffusion's named schedules)."""
    if num_steps < 1:
        raise ConfigError(f"DIFFUSION_STEPS: expected a positive integer, found {num_steps}")
    if name == "linear":
        scale = 1000.0 / num_steps
        return np.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=np.float64)
    if name == "cosine":

        def alpha_bar(tau: float) -> float:
            return math.cos((tau + 0.008) / 1.008 * math.pi / 2) ** 2

        # Python floats (float64) step by step, as the original's list comprehension.
        return np.array(
            [min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), 0.999) for i in range(num_steps)],
            dtype=np.float64,
        )
    raise ConfigError(f'DIFFUSION_NOISE_SCHEDULE: expected "linear" or "cosine", found {name!r}')


def space_timesteps(num_steps: int, section_counts: str | int | Sequence[int] | None) -> set[int]:
    """Original indices kept by a respacing spec (`space_timesteps` of the original).

    `section_counts`: per-section step counts as a list or comma-separated string ("2", "10,15,20"),
    or "ddimN" (one section, integer stride giving exactly N steps). Empty/None keeps every step.
    """
    if section_counts is None or section_counts == "" or (
        not isinstance(section_counts, (str, int)) and len(section_counts) == 0
    ):
        return set(range(num_steps))
    if isinstance(section_counts, int):
        section_counts = [section_counts]
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            try:
                desired = int(section_counts[len("ddim") :])
            except ValueError:
                raise ConfigError(
                    f'TIMESTEP_RESPACING: expected "ddimN" with an integer N, found {section_counts!r}'
                ) from None
            for stride in range(1, num_steps):
                if len(range(0, num_steps, stride)) == desired:
                    return set(range(0, num_steps, stride))
            raise ConfigError(
                f"TIMESTEP_RESPACING: expected a step count reachable with an integer stride over {num_steps} "
                f"steps, found {section_counts!r}"
            )
        try:
            section_counts = [int(x) for x in section_counts.split(",")]
        except ValueError:
            raise ConfigError(
                f'TIMESTEP_RESPACING: expected comma-separated integers or "ddimN", found {section_counts!r}'
            ) from None
    counts = [int(c) for c in section_counts]
    size_per, extra = divmod(num_steps, len(counts))
    start = 0
    kept: list[int] = []
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ConfigError(
                f"TIMESTEP_RESPACING: expected at most {size} steps in section {i}, found {count}"
            )
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        # Accumulated float index and Python's round(), exactly as the original.
        cur = 0.0
        for _ in range(count):
            kept.append(start + round(cur))
            cur += stride
        start += size
    return set(kept)


@dataclasses.dataclass(frozen=True, eq=False)
class Diffusion:
    """Constant tables of one (possibly respaced) diffusion process, all NumPy float64 [K].

    Identity-hashed (eq=False), so it can be a static argument or a Linen module attribute.
    """

    betas: np.ndarray
    timestep_map: np.ndarray  # [K] int64: spaced index → original index
    original_num_steps: int

    def __post_init__(self) -> None:
        b = np.asarray(self.betas, np.float64)
        if b.ndim != 1 or not ((b > 0).all() and (b <= 1).all()):
            raise ConfigError("diffusion betas: expected a 1-D array in (0, 1], found " + repr(b.shape))
        alphas = 1.0 - b
        acp = np.cumprod(alphas)
        acp_prev = np.append(1.0, acp[:-1])
        post_var = b * (1.0 - acp_prev) / (1.0 - acp)
        tables = {
            "alphas_cumprod": acp,
            "alphas_cumprod_prev": acp_prev,
            "sqrt_alphas_cumprod": np.sqrt(acp),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - acp),
            "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / acp),
            "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / acp - 1.0),
            "posterior_variance": post_var,
            # With K = 1 there is no index 1 to clip to; the value is never used with noise then.
            "posterior_log_variance_clipped": np.log(
                np.append(post_var[1], post_var[1:]) if len(b) > 1 else np.maximum(post_var, 1e-20)
            ),
            "posterior_mean_coef1": b * np.sqrt(acp_prev) / (1.0 - acp),
            "posterior_mean_coef2": (1.0 - acp_prev) * np.sqrt(alphas) / (1.0 - acp),
        }
        object.__setattr__(self, "betas", b)
        object.__setattr__(self, "timestep_map", np.asarray(self.timestep_map, np.int64))
        for name, value in tables.items():
            object.__setattr__(self, name, value)

    @property
    def num_timesteps(self) -> int:
        """K, the number of (spaced) steps."""
        return int(self.betas.shape[0])

    def latent_slot(self, k: int) -> int:
        """Position of spaced step k's original timestep among the kept ones in ascending order.

        timestep_map is ascending, so this is k itself; kept as a name for the export's latent layout.
        """
        return int(np.searchsorted(np.sort(self.timestep_map), self.timestep_map[k]))


def create_diffusion(
    steps: int = 1000,
    noise_schedule: str = "cosine",
    timestep_respacing: str | int | Sequence[int] | None = "",
) -> Diffusion:
    """The trainer's / inference engine's diffusion: base schedule, then respaced (`SpacedDiffusion`)."""
    base_betas = beta_schedule(noise_schedule, steps)
    use = space_timesteps(steps, timestep_respacing)
    acp = np.cumprod(1.0 - base_betas)
    last = 1.0
    new_betas, tmap = [], []
    for i, a in enumerate(acp):
        if i in use:
            new_betas.append(1.0 - a / last)
            last = a
            tmap.append(i)
    return Diffusion(betas=np.array(new_betas, np.float64), timestep_map=np.array(tmap), original_num_steps=steps)


# ---------------------------------------------------------------------------------------------------
# Per-step math (JAX). `k` is a spaced index: a Python int (constant folded) or an int array [B].
# ---------------------------------------------------------------------------------------------------


def extract(table: np.ndarray, k: int | jax.Array, ndim: int) -> jax.Array:
    """table[k] cast to float32, shaped to broadcast over an array of rank `ndim` with batch first."""
    if isinstance(k, (int, np.integer)):
        return jnp.asarray(np.float32(table[int(k)]))
    vals = jnp.take(jnp.asarray(table.astype(np.float32)), jnp.asarray(k))
    return vals.reshape(vals.shape + (1,) * (ndim - vals.ndim))


def original_timesteps(diff: Diffusion, k: int | jax.Array, batch: int) -> jax.Array:
    """[B] int32 original indices for spaced index k (the respacing wrapper's map)."""
    if isinstance(k, (int, np.integer)):
        return jnp.full((batch,), int(diff.timestep_map[int(k)]), jnp.int32)
    return jnp.take(jnp.asarray(diff.timestep_map.astype(np.int32)), jnp.asarray(k))


def q_sample(diff: Diffusion, x0: jax.Array, k: int | jax.Array, noise: jax.Array) -> jax.Array:
    """x_k = √ᾱ_k·x0 + √(1 − ᾱ_k)·ε."""
    return extract(diff.sqrt_alphas_cumprod, k, x0.ndim) * x0 + extract(
        diff.sqrt_one_minus_alphas_cumprod, k, x0.ndim
    ) * noise


def q_posterior_mean_variance(
    diff: Diffusion, x0: jax.Array, x_t: jax.Array, k: int | jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Mean c1·x0 + c2·x_t, variance σ̃² and its clipped log, of q(x_{k−1} | x_k, x0)."""
    mean = extract(diff.posterior_mean_coef1, k, x_t.ndim) * x0 + extract(diff.posterior_mean_coef2, k, x_t.ndim) * x_t
    var = extract(diff.posterior_variance, k, x_t.ndim)
    logvar = extract(diff.posterior_log_variance_clipped, k, x_t.ndim)
    return mean, var, logvar


def predict_eps_from_x0(diff: Diffusion, x_t: jax.Array, k: int | jax.Array, x0: jax.Array) -> jax.Array:
    """ε̂ = (√(1/ᾱ)·x_t − x̂0)/√(1/ᾱ − 1)."""
    return (extract(diff.sqrt_recip_alphas_cumprod, k, x_t.ndim) * x_t - x0) / extract(
        diff.sqrt_recipm1_alphas_cumprod, k, x_t.ndim
    )


def _nonzero(k: int | jax.Array, ndim: int) -> jax.Array:
    if isinstance(k, (int, np.integer)):
        return jnp.asarray(1.0 if int(k) != 0 else 0.0, jnp.float32)
    m = (jnp.asarray(k) != 0).astype(jnp.float32)
    return m.reshape(m.shape + (1,) * (ndim - m.ndim))


def p_sample_step(diff: Diffusion, x_t: jax.Array, k: int | jax.Array, x0: jax.Array, noise: jax.Array) -> jax.Array:
    """Ancestral (DDPM) step given x̂0: mean + 1[k > 0]·exp(0.5·log σ̃²_k)·z."""
    mean, _, logvar = q_posterior_mean_variance(diff, x0, x_t, k)
    return mean + _nonzero(k, x_t.ndim) * jnp.exp(0.5 * logvar) * noise


def ddim_step(
    diff: Diffusion,
    x_t: jax.Array,
    k: int | jax.Array,
    x0: jax.Array,
    noise: jax.Array | None = None,
    eta: float = 0.0,
) -> jax.Array:
    """DDIM step given x̂0: x̂0·√ᾱ_prev + √(1 − ᾱ_prev − σ²)·ε̂ + 1[k > 0]·σ·z."""
    nd = x_t.ndim
    eps = predict_eps_from_x0(diff, x_t, k, x0)
    ab = extract(diff.alphas_cumprod, k, nd)
    ab_prev = extract(diff.alphas_cumprod_prev, k, nd)
    sigma = eta * jnp.sqrt((1 - ab_prev) / (1 - ab)) * jnp.sqrt(1 - ab / ab_prev)
    out = x0 * jnp.sqrt(ab_prev) + jnp.sqrt(1 - ab_prev - sigma**2) * eps
    if eta != 0.0:
        if noise is None:
            raise ValueError("ddim_step: eta > 0 needs noise")
        out = out + _nonzero(k, nd) * sigma * noise
    return out


def huber(d: jax.Array) -> jax.Array:
    """Smooth-L1 with δ = 1, elementwise: 0.5·d² if |d| < 1 else |d| − 0.5."""
    a = jnp.abs(d)
    return jnp.where(a < 1.0, 0.5 * d * d, a - 0.5)


# ---------------------------------------------------------------------------------------------------
# Sampling loops (Python loops over the few spaced steps)
# ---------------------------------------------------------------------------------------------------


def _check_skip(diff: Diffusion, skip_steps: int) -> None:
    if not 0 <= skip_steps < diff.num_timesteps:
        raise ConfigError(
            f"SKIP_STEPS: expected an integer in [0, {diff.num_timesteps - 1}], found {skip_steps}"
        )


def p_sample_loop(
    diff: Diffusion,
    denoise_fn: DenoiseFn,
    noise: jax.Array,
    carry: Any = None,
    skip_steps: int = 0,
    init_x0: jax.Array | None = None,
    timesteps: Callable[[int], jax.Array] | None = None,
) -> tuple[jax.Array, Any]:
    """Ancestral sampling with external noise [B, K + 1, T, C] (the original's layout).

    x_K = noise[:, −1] (or q_sample(init_x0 or zeros, K − 1 − skip, noise[:, −1]) when skipping);
    spaced step k uses noise[:, k]. `timesteps(k)` gives the [B] original timesteps the network sees at
    spaced step k (default `original_timesteps`; the ONNX export builds them from a symbolic batch).
    Returns (final sample [B, T, C], carry).
    """
    K = diff.num_timesteps
    if noise.ndim != 4 or noise.shape[1] != K + 1:
        raise ValueError(f"noise: expected [B, {K + 1}, T, C] for {K} diffusion steps, found {tuple(noise.shape)}")
    _check_skip(diff, skip_steps)
    indices = list(range(K - skip_steps))[::-1]
    x = noise[:, -1]
    if skip_steps or init_x0 is not None:
        start = jnp.zeros_like(x) if init_x0 is None else init_x0
        x = q_sample(diff, start, indices[0], x)
    batch = x.shape[0]
    for k in indices:
        t = original_timesteps(diff, k, batch) if timesteps is None else timesteps(k)
        x0, carry = denoise_fn(x, t, diff.latent_slot(k), carry)
        x = p_sample_step(diff, x, k, x0, noise[:, k])
    return x, carry


def ddim_sample_loop(
    diff: Diffusion,
    denoise_fn: DenoiseFn,
    x_T: jax.Array,
    carry: Any = None,
    skip_steps: int = 0,
    eta: float = 0.0,
    step_noise: jax.Array | None = None,
    init_x0: jax.Array | None = None,
) -> tuple[jax.Array, Any]:
    """DDIM sampling from x_T [B, T, C]; with eta > 0, `step_noise` [B, K, T, C] gives step k's z."""
    _check_skip(diff, skip_steps)
    indices = list(range(diff.num_timesteps - skip_steps))[::-1]
    x = x_T
    if skip_steps or init_x0 is not None:
        start = jnp.zeros_like(x) if init_x0 is None else init_x0
        x = q_sample(diff, start, indices[0], x)
    if eta != 0.0 and step_noise is None:
        raise ValueError("ddim_sample_loop: eta > 0 needs step_noise [B, K, T, C]")
    batch = x.shape[0]
    for k in indices:
        x0, carry = denoise_fn(x, original_timesteps(diff, k, batch), diff.latent_slot(k), carry)
        x = ddim_step(diff, x, k, x0, None if step_noise is None else step_noise[:, k], eta)
    return x, carry
