"""TorchGRU against a NumPy GRU written from PyTorch's equations; masking of padded frames."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2f_jax.models.gru import TorchGRU


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_gru(x, h0, params, num_layers):
    """PyTorch nn.GRU(batch_first=True) in float64: x [B, T, I], h0 [L, B, H]."""
    layer_in = x.astype(np.float64)
    finals = []
    for k in range(num_layers):
        w_ih = np.asarray(params[f"weight_ih_l{k}"], np.float64)
        w_hh = np.asarray(params[f"weight_hh_l{k}"], np.float64)
        b_ih = np.asarray(params[f"bias_ih_l{k}"], np.float64)
        b_hh = np.asarray(params[f"bias_hh_l{k}"], np.float64)
        w_ir, w_iz, w_in = np.split(w_ih, 3)
        w_hr, w_hz, w_hn = np.split(w_hh, 3)
        b_ir, b_iz, b_in = np.split(b_ih, 3)
        b_hr, b_hz, b_hn = np.split(b_hh, 3)
        h = np.asarray(h0[k], np.float64)
        outs = []
        for t in range(layer_in.shape[1]):
            xt = layer_in[:, t]
            r = _sigmoid(xt @ w_ir.T + b_ir + h @ w_hr.T + b_hr)
            z = _sigmoid(xt @ w_iz.T + b_iz + h @ w_hz.T + b_hz)
            n = np.tanh(xt @ w_in.T + b_in + r * (h @ w_hn.T + b_hn))
            h = (1 - z) * n + z * h
            outs.append(h)
        layer_in = np.stack(outs, axis=1)
        finals.append(h)
    return layer_in, np.stack(finals)


def test_param_names_shapes_and_torch_init_range():
    gru = TorchGRU(hidden_size=8, num_layers=2)
    params = gru.init(jax.random.PRNGKey(0), jnp.zeros((1, 3, 5)))["params"]
    shapes = {k: v.shape for k, v in params.items()}
    assert shapes == {
        "weight_ih_l0": (24, 5), "weight_hh_l0": (24, 8), "bias_ih_l0": (24,), "bias_hh_l0": (24,),
        "weight_ih_l1": (24, 8), "weight_hh_l1": (24, 8), "bias_ih_l1": (24,), "bias_hh_l1": (24,),
    }
    bound = 1 / np.sqrt(8)
    for v in params.values():
        assert np.abs(np.asarray(v)).max() <= bound
        assert np.abs(np.asarray(v)).max() > 0.5 * bound  # really uniform over the range, not tiny


def test_matches_numpy_gru_with_initial_state():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 5)).astype(np.float32)
    h0 = rng.standard_normal((2, 2, 6)).astype(np.float32)
    gru = TorchGRU(hidden_size=6, num_layers=2)
    params = gru.init(jax.random.PRNGKey(1), x)["params"]
    # Distinct b_hn matters: it sits inside the reset product, a Flax-GRUCell layout would differ.
    params = jax.tree_util.tree_map(lambda p: p * 3.0, params)
    out, h = gru.apply({"params": params}, x, h0)
    ref_out, ref_h = numpy_gru(x, h0, params, 2)
    np.testing.assert_allclose(np.asarray(out), ref_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(h), ref_h, rtol=1e-5, atol=1e-5)
    assert out.shape == (2, 7, 6) and h.shape == (2, 2, 6)


def test_default_initial_state_is_zero():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4, 3)).astype(np.float32)
    gru = TorchGRU(hidden_size=4, num_layers=2)
    params = gru.init(jax.random.PRNGKey(2), x)["params"]
    out, h = gru.apply({"params": params}, x)
    ref_out, ref_h = numpy_gru(x, np.zeros((2, 1, 4)), params, 2)
    np.testing.assert_allclose(np.asarray(out), ref_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(h), ref_h, rtol=1e-5, atol=1e-5)


def test_mask_padded_batch_equals_unpadded_items():
    rng = np.random.default_rng(2)
    lengths = [6, 3]
    items = [rng.standard_normal((1, n, 4)).astype(np.float32) for n in lengths]
    h0 = rng.standard_normal((2, 2, 5)).astype(np.float32)
    x = np.zeros((2, 6, 4), np.float32)
    mask = np.zeros((2, 6), np.float32)
    for b, n in enumerate(lengths):
        x[b, :n] = items[b][0]
        x[b, n:] = 7.0  # garbage in padding must not leak into the state
        mask[b, :n] = 1
    gru = TorchGRU(hidden_size=5, num_layers=2)
    params = gru.init(jax.random.PRNGKey(3), x)["params"]
    out, h = gru.apply({"params": params}, x, h0, mask)
    for b, n in enumerate(lengths):
        o1, h1 = gru.apply({"params": params}, items[b], h0[:, b : b + 1])
        np.testing.assert_allclose(np.asarray(out[b, :n]), np.asarray(o1[0]), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(np.asarray(h[:, b]), np.asarray(h1[:, 0]), rtol=1e-6, atol=1e-6)
    # Without the mask the short item's final state does change (the test can fail).
    _, h_nomask = gru.apply({"params": params}, x, h0)
    assert not np.allclose(np.asarray(h_nomask[:, 1]), np.asarray(h[:, 1]))


def test_interlayer_dropout_only_in_training():
    x = jnp.ones((1, 5, 3))
    gru = TorchGRU(hidden_size=16, num_layers=2, dropout=0.5)
    params = gru.init(jax.random.PRNGKey(4), x)["params"]
    eval1, _ = gru.apply({"params": params}, x)
    eval2, _ = gru.apply({"params": params}, x, train=False)
    np.testing.assert_array_equal(np.asarray(eval1), np.asarray(eval2))
    tr_a, _ = gru.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.PRNGKey(5)})
    tr_b, _ = gru.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.PRNGKey(6)})
    assert not np.allclose(np.asarray(tr_a), np.asarray(eval1))
    assert not np.allclose(np.asarray(tr_a), np.asarray(tr_b))
    # A single layer has no inter-layer dropout, as in PyTorch.
    single = TorchGRU(hidden_size=4, num_layers=1, dropout=0.5)
    p1 = single.init(jax.random.PRNGKey(7), x)["params"]
    a, _ = single.apply({"params": p1}, x, train=True, rngs={"dropout": jax.random.PRNGKey(8)})
    b, _ = single.apply({"params": p1}, x)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_gradient_flows_to_all_parameters():
    x = jnp.asarray(np.random.default_rng(3).standard_normal((2, 4, 3)), jnp.float32)
    gru = TorchGRU(hidden_size=4, num_layers=2)
    params = gru.init(jax.random.PRNGKey(9), x)["params"]
    grads = jax.grad(lambda p: jnp.sum(gru.apply({"params": p}, x)[0] ** 2))(params)
    for name, g in grads.items():
        assert np.abs(np.asarray(g)).sum() > 0, name


@pytest.mark.parametrize("unroll", [1, True])
def test_unroll_gives_same_result(unroll):
    x = jnp.asarray(np.random.default_rng(4).standard_normal((1, 5, 3)), jnp.float32)
    ref = TorchGRU(hidden_size=4, num_layers=2)
    params = ref.init(jax.random.PRNGKey(10), x)["params"]
    out_ref, _ = ref.apply({"params": params}, x)
    out, _ = TorchGRU(hidden_size=4, num_layers=2, unroll=unroll).apply({"params": params}, x)
    np.testing.assert_allclose(np.asarray(out), np.asarray(out_ref), rtol=1e-6, atol=1e-6)
