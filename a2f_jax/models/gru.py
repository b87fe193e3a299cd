"""Multi-layer GRU with PyTorch's gate layout and parameter names (`nn.GRU(batch_first=True)`).

Gates per layer (PyTorch order r, z, n in the stacked 3H axis):
    r  = σ(W_ir x + b_ir + W_hr h + b_hr)
    z  = σ(W_iz x + b_iz + W_hz h + b_hz)
    n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
    h' = (1 − z) ⊙ n + z ⊙ h
Parameters keep PyTorch's names and shapes (`weight_ih_l{k}` [3H, I], `weight_hh_l{k}` [3H, H],
`bias_ih_l{k}` [3H], `bias_hh_l{k}` [3H]) so a torch state dict imports without reshaping.
Hidden states use PyTorch's [layers, B, H] layout. An optional frame mask [B, T] (1 = real frame)
keeps the state unchanged on padded frames, so right-padded items reach the same final state as
the unpadded items alone.

`dtype` (`models.precision`): the compute dtype of the two matmuls (input and recurrent projections). The
recurrent state, the gate arithmetic and the final states stay float32, so rounding does not compound over
hundreds of frames; the per-frame outputs are returned in `dtype`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from a2f_jax.models.layers import Dropout, torch_uniform
from a2f_jax.models.precision import cast


def gru_layer(
    x: jax.Array,
    h0: jax.Array,
    weight_ih: jax.Array,
    weight_hh: jax.Array,
    bias_ih: jax.Array,
    bias_hh: jax.Array,
    mask: jax.Array | None = None,
    unroll: int | bool = 1,
    dtype: Any = None,
) -> tuple[jax.Array, jax.Array]:
    """One GRU layer over time. x [B, T, I], h0 [B, H] → (outputs [B, T, H], final state [B, H]).

    With `mask` [B, T], a padded frame copies the previous state (and its output is that state).
    `dtype`: compute dtype of the matmuls (None: x's); state and gates keep h0's dtype, outputs are in `dtype`.
    """
    hidden = h0.shape[-1]
    dt = x.dtype if dtype is None else jnp.dtype(dtype)
    sdt = h0.dtype  # the state's dtype (float32 in mixed precision)
    # The input projection has no recurrence: one matmul over all frames.
    gi = jnp.einsum("bti,gi->btg", cast(x, dt), cast(weight_ih, dt)) + cast(bias_ih, dt)  # [B, T, 3H]
    gi_t = jnp.swapaxes(gi, 0, 1)  # [T, B, 3H]
    if mask is None:
        m_t = jnp.ones(gi_t.shape[:2] + (1,), sdt)
    else:
        m_t = jnp.swapaxes(mask.astype(sdt), 0, 1)[..., None]  # [T, B, 1]
    w_hh, b_hh = cast(weight_hh, dt), cast(bias_hh, dt)

    def step(h: jax.Array, inputs: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        gi_step, m = inputs
        gh = cast(cast(h, dt) @ w_hh.T + b_hh, sdt)  # [B, 3H]
        gi_step = cast(gi_step, sdt)
        i_r, i_z, i_n = gi_step[:, :hidden], gi_step[:, hidden : 2 * hidden], gi_step[:, 2 * hidden :]
        h_r, h_z, h_n = gh[:, :hidden], gh[:, hidden : 2 * hidden], gh[:, 2 * hidden :]
        r = jax.nn.sigmoid(i_r + h_r)
        z = jax.nn.sigmoid(i_z + h_z)
        n = jnp.tanh(i_n + r * h_n)
        h_new = (1.0 - z) * n + z * h
        # Arithmetic select (not jnp.where) keeps gradients clean and exports as Mul/Add.
        h_new = m * h_new + (1.0 - m) * h
        return h_new, h_new

    h_final, outs = jax.lax.scan(step, h0, (gi_t, m_t), unroll=unroll)
    return cast(jnp.swapaxes(outs, 0, 1), dt), h_final


class TorchGRU(nn.Module):
    """`torch.nn.GRU(input_size, hidden_size, num_layers, batch_first=True, dropout=dropout)`.

    __call__(x [B, T, I], h0 [L, B, H] | None, mask [B, T] | None, *, train) →
    (outputs of the last layer [B, T, H], final states [L, B, H]).
    Inter-layer dropout (on layer k outputs feeding layer k+1, training only) uses the "dropout" stream.
    """

    hidden_size: int
    num_layers: int = 1
    dropout: float = 0.0
    unroll: int | bool = 1
    dtype: Any = jnp.float32  # matmul dtype; the state and the final states are float32

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        h0: jax.Array | None = None,
        mask: jax.Array | None = None,
        *,
        train: bool = False,
    ) -> tuple[jax.Array, jax.Array]:
        batch = x.shape[0]
        hsz = self.hidden_size
        if h0 is None:
            h0 = jnp.zeros((self.num_layers, batch, hsz), jnp.float32)
        h0 = cast(h0, jnp.float32)
        init = torch_uniform(hsz)  # PyTorch's RNN init: U(-1/sqrt(H), 1/sqrt(H)) for weights and biases
        finals = []
        layer_in = x
        for k in range(self.num_layers):
            in_size = layer_in.shape[-1]
            w_ih = self.param(f"weight_ih_l{k}", init, (3 * hsz, in_size))
            w_hh = self.param(f"weight_hh_l{k}", init, (3 * hsz, hsz))
            b_ih = self.param(f"bias_ih_l{k}", init, (3 * hsz,))
            b_hh = self.param(f"bias_hh_l{k}", init, (3 * hsz,))
            out, h_last = gru_layer(layer_in, h0[k], w_ih, w_hh, b_ih, b_hh, mask, self.unroll, self.dtype)
            finals.append(h_last)
            if k < self.num_layers - 1 and self.dropout > 0.0:
                out = Dropout(self.dropout)(out, deterministic=not train)
            layer_in = out
        return layer_in, jnp.stack(finals, axis=0)
