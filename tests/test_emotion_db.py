"""Implicit emotion database: init, lookup, compactify, npz/pkl/bin formats."""

import pickle
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2f_jax.errors import DataError
from a2f_jax.models import emotion_db as E


def _db():
    # three shots of 5, 4 and 3 rows; a muted shot appended last
    table = np.arange(15 * 2, dtype=np.float32).reshape(15, 2)
    shots = [("cp1_neutral", 0, 5), ("cp2_joy", 5, 4), ("eg1_anger", 9, 3), ("muted_cp1_neutral_2", 12, 3)]
    return E.from_shots(table, shots)


def test_init_std_and_lookup():
    db = E.init_emotion_db(jax.random.PRNGKey(0), 20000, 16, 0.01)
    assert db.shape == (20000, 16) and db.dtype == jnp.float32
    assert abs(float(db.std()) - 0.01) < 2e-4 and abs(float(db.mean())) < 2e-4
    idx = jnp.array([[3, 4], [19999, 0]])
    np.testing.assert_array_equal(E.lookup(db, idx), np.asarray(db)[np.asarray(idx)])
    assert E.lookup(db, idx).shape == (2, 2, 16)
    with pytest.raises(DataError, match="total_frames"):
        E.init_emotion_db(jax.random.PRNGKey(0), 0)


def test_index_vector_and_errors():
    db = _db()
    assert db.index("cp2_joy", 3) == 8
    np.testing.assert_array_equal(db.vector("eg1_anger", 0), [18, 19])
    with pytest.raises(DataError, match="frame"):
        db.index("cp2_joy", 4)
    with pytest.raises(DataError, match="'nope'"):
        db.index("nope", 0)
    with pytest.raises(DataError, match="rows within"):
        E.ImplicitEmotionDB(np.zeros((3, 2)), {"a": (2, 5)})


def test_merge_ranges_like_original():
    assert E.merge_ranges([(5, 8), (0, 2), (2, 3), (4, 4)]) == [(0, 3), (4, 4), (5, 8)]
    assert E.merge_ranges([(0, 5), (1, 2)]) == [(0, 5)]


def test_compactify_keeps_covered_rows_in_start_order():
    db = _db()
    full = db.emo_db.copy()
    # clips: two overlapping ranges on cp2_joy, one running past the shot end on eg1_anger, all of the muted shot
    db.compactify([("eg1_anger", 1, 3), ("cp2_joy", 0, 1), ("cp2_joy", 1, 2), ("muted_cp1_neutral_2", 0, 2)])
    expected = np.concatenate([full[5:8], full[10:12], np.zeros((1, 2), np.float32), full[12:15]])
    np.testing.assert_array_equal(db.emo_db, expected)
    assert db.emo_specs == {"cp2_joy": (0, 3), "eg1_anger": (3, 3), "muted_cp1_neutral_2": (6, 3)}
    assert db.compactified is True
    db.compactify([("cp2_joy", 0, 0)])  # idempotent
    assert db.emo_db.shape == (9, 2)


def test_npz_format_matches_deploy_contract(tmp_path):
    db = _db()
    db.emo_specs = dict(reversed(list(db.emo_specs.items())))  # insertion order must not matter
    path = tmp_path / "implicit_emo_db.npz"
    db.save_npz(path)
    with np.load(path) as z:
        assert sorted(z.keys()) == ["emo_db", "emo_spec_names", "emo_spec_size", "emo_spec_start"]
        assert z["emo_db"].dtype == np.float32 and z["emo_db"].shape == (15, 2)
        assert z["emo_spec_names"].dtype.kind == "S"  # fixed-width bytes, not unicode
        assert z["emo_spec_start"].dtype == np.int32 and z["emo_spec_size"].dtype == np.int32
        assert z["emo_spec_names"].tolist() == [b"cp1_neutral", b"cp2_joy", b"eg1_anger", b"muted_cp1_neutral_2"]
        assert z["emo_spec_start"].tolist() == [0, 5, 9, 12]
        assert z["emo_spec_size"].tolist() == [5, 4, 3, 3]
    back = E.ImplicitEmotionDB.load_npz(path)
    np.testing.assert_array_equal(back.emo_db, db.emo_db)
    assert back.emo_specs == {k: v for k, v in _db().emo_specs.items()}
    with pytest.raises(DataError, match=".npz"):
        db.save_npz(tmp_path / "db.bin")
    np.savez(tmp_path / "bad.npz", emo_db=np.zeros((1, 2)))
    with pytest.raises(DataError, match="emo_spec_names"):
        E.ImplicitEmotionDB.load_npz(tmp_path / "bad.npz")


def test_pkl_layout_and_round_trip(tmp_path):
    db = _db()
    db.compactify([("cp1_neutral", 0, 1)])
    db.save_pkl(tmp_path / "implicit_emo_db.pkl")
    with open(tmp_path / "implicit_emo_db.pkl", "rb") as f:
        raw = pickle.load(f)
    assert set(raw) == {"emo_db", "emo_specs", "compactified"}
    assert raw["emo_specs"] == {"cp1_neutral": (0, 2)} and raw["compactified"] is True
    back = E.ImplicitEmotionDB.load_pkl(tmp_path / "implicit_emo_db.pkl")
    np.testing.assert_array_equal(back.emo_db, db.emo_db)


def test_bin_layout_and_round_trip(tmp_path):
    db = _db()
    path = tmp_path / "emo.bin"
    db.save_bin(path)
    data = path.read_bytes()
    assert struct.unpack_from("<i", data, 0)[0] == 4
    n = struct.unpack_from("<i", data, 4)[0]
    assert data[8 : 8 + n] == b"cp1_neutral" and struct.unpack_from("<ii", data, 8 + n) == (0, 5)
    assert data[-4 * 30 - 8 : -4 * 30] == struct.pack("<ii", 2, 30)
    back = E.ImplicitEmotionDB.load_bin(path)
    np.testing.assert_array_equal(back.emo_db, db.emo_db)
    assert back.emo_specs == db.emo_specs
    path.write_bytes(data[:-5])
    with pytest.raises(DataError, match="float32"):
        E.ImplicitEmotionDB.load_bin(path)
    path.write_bytes(data[:10])
    with pytest.raises(DataError, match="truncated"):
        E.ImplicitEmotionDB.load_bin(path)
