"""Config system: bases, both file styles, merge/validation rules, overrides, JSON round trip."""

from __future__ import annotations

import json
import pathlib
import textwrap

import ml_collections
import pytest

from a2f_jax import config
from a2f_jax.config import ConfigError, Configs, base, resolve_actor_value

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ["example-regression", "example-regression-min", "example-diffusion", "example-diffusion-min"]
ORIGINAL_STYLE = ROOT / "tests" / "fixtures" / "original_style_configs" / "example-regression"

# The parameter names of the original's config_base modules (a2f-jax must carry every one).
ORIGINAL_KEYS = {
    "dataset": """ACTOR_NAMES AUDIO_ROOT BLENDSHAPE_SKIN_CONFIG_FPATH BLENDSHAPE_SKIN_FPATH
        BLENDSHAPE_TONGUE_CONFIG_FPATH BLENDSHAPE_TONGUE_FPATH CACHE_FPS EYE_ANIM_DATA_FPATH
        EYE_BLINK_KEYS_FPATH EYE_SACCADE_ROTATIONS_FPATH JAW_ANIM_DATA_FPATH JAW_KEYPOINTS_NEUTRAL_FPATH
        SHOT_EMOTION_MAP SHOT_EMOTION_NAMES SKIN_CACHE_ROOT SKIN_EYE_CLOSE_POSE_DELTA_FPATH
        SKIN_EYE_DIST_VERTEX_LIST_FPATH SKIN_LIP_DIST_VERTEX_LIST_FPATH SKIN_LIP_OPEN_POSE_DELTA_FPATH
        SKIN_LIP_SIZE_VERTEX_LIST_FPATH SKIN_NEUTRAL_FPATH SKIN_NEUTRAL_INFERENCE_FPATH TONGUE_CACHE_ROOT
        TONGUE_NEUTRAL_FPATH TONGUE_NEUTRAL_INFERENCE_FPATH TONGUE_RIGID_VERTEX_LIST_FPATH TRANSFORM_SCALE""",
    "preproc": """DEFAULT_EYE_BLINK_KEYS_SHAPE DEFAULT_EYE_SACCADE_ROT_SHAPE DEFAULT_JAW_KEYPOINTS_SHAPE
        DEFAULT_TONGUE_PCA_SHAPE PREPROC_OUTPUT_ROOT RUN_INFO RUN_NAME SKIN_CACHE_SHOTS
        SKIN_FORCE_COMPONENTS SKIN_PCA_VARIANCE_THRESHOLD SKIN_PRUNE_CACHE_ROOT SKIN_PRUNE_CACHE_SHOTS
        SKIN_PRUNE_MESH_MASK_FPATH SKIN_PRUNE_SIM_DIST SKIN_SELECT_DISTINCT_MAX_ITER TONGUE_CACHE_SHOTS
        TONGUE_FORCE_COMPONENTS TONGUE_PCA_VARIANCE_THRESHOLD VERBOSE""",
    "train_regression": """AUDIO_DATA_CACHING AUDIO_PARAMS AUDIO_PREPROC_METHOD AUGMENT
        AUG_MUTED_AUDIO_NOISE_LOCAL_SCALE_RANGE AUG_MUTED_AUDIO_NOISE_SCALE AUG_MUTED_AUDIO_NOISE_TYPE
        AUG_MUTED_SHOTS AUG_MUTED_SKIN_IS_NEUTRAL_FOR_NEUTRAL_EMO AUG_MUTED_TONGUE_IS_NEUTRAL BATCH_SIZE
        CLIPS COMPACTIFY_IMPLICIT_EMO_DB DATA_INFO_FPATH DEFAULT_SHOT_EMOTION_NAME EMO_INIT_SIGMA
        EMO_LR_MULT EYE_DIST_THRESHOLD FINAL_DEPLOY_ROOT LEARNING_RATE LOG_PERIOD LOSS_EMO_REG_ALPHA
        LOSS_LIP_DIST_ALPHA LOSS_LIP_DIST_EMO_WEIGHTS LOSS_LIP_DIST_EXP LOSS_LIP_SIZE_ALPHA
        LOSS_LIP_SIZE_EMO_WEIGHTS LOSS_MOTION_ALPHA LOSS_MSE_ALPHA LOSS_PHONEME_ALPHA
        LOSS_PHONEME_MOTION_ALPHA LOSS_PHONEME_SIL_WEIGHT LOSS_VOL_STAB_REG_ALPHA LOSS_VOL_STAB_REG_EXP
        LR_STEP_GAMMA NETWORK_HYPER_PARAMS NETWORK_NAME NETWORK_TYPE NETWORK_VERSION NUM_EPOCHS
        PHONEME_DATA_CACHING PHONEME_FORCING_LANGS PHONEME_PROB_TEMPERATURE PREPROC_ROOT
        PREPROC_RUN_NAME_FULL PRETRAINED_NET_FPATH REMOVE_CLOSING_EYE REPRODUCIBLE
        RESCALE_TARGET_CHANNEL_DATA RNG_SEED_DATASET RNG_SEED_TORCH RUN_INFO RUN_NAME SEQ_LEN SEQ_STRIDE
        SHOT_EMOTION_NAME_FOR_ALL_ZEROS SHOT_LIST_FPATH SKIN_PCA_COEFFS_FPATH SKIN_PCA_SHAPES_FPATH
        TARGET_CHANNELS TARGET_DATA_CACHING TARGET_FPS TARGET_OBJECTS_TO_CUDA TONGUE_PCA_COEFFS_FPATH
        TONGUE_PCA_SHAPES_FPATH TORCH_CACHE_ROOT TRAIN_OUTPUT_ROOT""",
    "train_diffusion": """AUDIO_DATA_CACHING AUDIO_PARAMS AUDIO_PREPROC_METHOD AUGMENT
        AUG_MUTED_AUDIO_NOISE_LOCAL_SCALE_RANGE AUG_MUTED_AUDIO_NOISE_SCALE AUG_MUTED_AUDIO_NOISE_TYPE
        AUG_MUTED_SHOTS AUG_MUTED_SKIN_IS_NEUTRAL_FOR_NEUTRAL_EMO AUG_MUTED_TONGUE_IS_NEUTRAL BATCH_SIZE
        CLIPS DATA_INFO_FPATH DEFAULT_SHOT_EMOTION_NAME DIFFUSION_NOISE_SCHEDULE DIFFUSION_STEPS
        FINAL_DEPLOY_ROOT GRADIENT_ACCUMULATION_STEPS JAW_WEIGHT LEARNING_RATE LOG_PERIOD
        LOSS_EXP_SMOOTH_ALPHA LOSS_LIP_DIST_ALPHA LOSS_LIP_DIST_EMO_WEIGHTS LOSS_LIP_DIST_EXP
        LOSS_MOTION_ALPHA LOSS_VELOCITY_ALPHA MEAN_GEOMETRY_FPATH NETWORK_HYPER_PARAMS NETWORK_NAME
        NETWORK_TYPE NETWORK_VERSION NO_STANDARDIZE_AUDIO NUM_EPOCHS PHONEME_DATA_CACHING PREPROC_ROOT
        PREPROC_RUN_NAME_FULL PRETRAINED_NET_FPATH REPRODUCIBLE RESCALE_TARGET_CHANNEL_DATA
        RNG_SEED_DATASET RNG_SEED_TORCH RUN_INFO RUN_NAME SHOT_EMOTION_NAME_FOR_ALL_ZEROS SHOT_LIST_FPATH
        SKIN_PCA_COEFFS_FPATH SKIN_PCA_SHAPES_FPATH STREAMING_CFG SUBSEGMENT_MAX_FRAME
        SUBSEGMENT_MIN_FRAME TARGET_CHANNELS TARGET_DATA_CACHING TARGET_FPS TARGET_OBJECTS_TO_CUDA
        TIMESTEP_RESPACING TONGUE_PCA_COEFFS_FPATH TONGUE_PCA_SHAPES_FPATH TONGUE_WEIGHT TORCH_CACHE_ROOT
        TRAIN_ON_RANDOM_SUBSEGMENT TRAIN_OUTPUT_ROOT""",
    "inference_regression": "CONFIG",
    "inference_diffusion": """ACTOR_NAME AUDIO_PATH CONDITION CONFIG DETERMINISTIC_NOISE_PATH EMOTION_LABEL
        INFERENCE_MODE INFERENCE_OUTPUT_ROOT NUM_DIFFUSION_STEPS OUTPUT_MAYA_CACHE OUTPUT_NPY_FILE
        SKIP_STEPS TIMESTEP_RESPACING USE_DDIM USE_DELTA_OUTPUT USE_EXTERNAL_NOISE_INPUT
        USE_PER_FRAME_EMO_LABEL""",
}
# docs/DEVELOPING.md, "Config keys beyond the original".
EXTRA_TRAIN = {
    "AUDIO_ENCODER_RANDOM_INIT": False,
    "AUDIO_ENCODER_CONFIG_OVERRIDES": {},
    "VALIDATION_CLIPS": [],
    "VALIDATION_PERIOD": 500,
    "CHECKPOINT_PERIOD": 1000,
    "MAX_CHECKPOINTS_TO_KEEP": 3,
    "MAX_TRAIN_STEPS": None,
    "COMPUTE_DTYPE": "float32",
}


@pytest.fixture(autouse=True)
def _roots(monkeypatch, tmp_path):
    monkeypatch.setenv("A2F_DATASETS_ROOT", str(tmp_path / "ds"))
    monkeypatch.setenv("A2F_WORKSPACE_ROOT", str(tmp_path / "ws"))


def write_dir(root: pathlib.Path, **files: str) -> pathlib.Path:
    """A config dir with config_<name>.py files from dedented source text."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / f"config_{name}.py").write_text(textwrap.dedent(text))
    return root


# --- bases -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ORIGINAL_KEYS))
def test_bases_hold_every_original_parameter(name):
    keys = set(getattr(base, name)().keys())
    expected = set(ORIGINAL_KEYS[name].split())
    extra = set(EXTRA_TRAIN) | {"AUDIO_ENCODER_SNAPSHOT"} if name.startswith("train") else set()
    if name == "train_diffusion":
        extra |= {"GRAD_ACCUM_REDUCTION", "LENGTH_BUCKETS"}
    if name == "train_regression":
        extra |= {"PHONEME_POSTERIORS_ROOT", "PHONEME_VOCAB"}
    assert keys == expected | extra


def test_base_values_match_the_spec():
    reg, dif = base.train_regression(), base.train_diffusion()
    assert reg.LEARNING_RATE == pytest.approx(2e-4) and reg.BATCH_SIZE == 32 and reg.NUM_EPOCHS == 50
    assert reg.AUDIO_PARAMS.to_dict() == {"buffer_len": 8320, "buffer_ofs": 4160, "samplerate": 16000}
    assert reg.NETWORK_HYPER_PARAMS.autocorr_params.win_func == "hanning"
    assert reg.LOSS_LIP_DIST_ALPHA == 100.0 and reg.LOSS_PHONEME_ALPHA == 0.1 and reg.PRETRAINED_NET_FPATH is None
    assert isinstance(reg.TARGET_FPS, float) and reg.TARGET_FPS == 30.0
    assert dif.TARGET_FPS == 60.0 and dif.BATCH_SIZE == 1 and dif.NUM_EPOCHS == 400
    assert dif.NETWORK_HYPER_PARAMS.hubert_feature_dim == 768
    assert dif.STREAMING_CFG["30"].to_dict() == {
        "audio_pad_left": 16000, "audio_pad_right": 16000, "window_size": 16000,
        "left_truncate": 7, "right_truncate": 8, "block_frame_size": 15,
    }
    assert dif.AUGMENT.pitch_shift.to_dict() == {"min_semitones": -2, "max_semitones": 2, "p": 0.2}
    assert dif.GRAD_ACCUM_REDUCTION == "sum" and list(dif.LENGTH_BUCKETS) == [120, 240, 360, 600]
    for cfg in (reg, dif):
        for key, value in EXTRA_TRAIN.items():
            assert cfg.to_dict()[key] == value, key
    assert reg.AUDIO_ENCODER_SNAPSHOT.endswith("/pretrained/wav2vec2-base")
    assert dif.AUDIO_ENCODER_SNAPSHOT.endswith("/pretrained/hubert-base-ls960")
    ir, idf = base.inference_regression(), base.inference_diffusion()
    assert ir.CONFIG.upper_face_smoothing == 0.001 and idf.CONFIG.upper_face_smoothing == 0.003
    assert ir.CONFIG.source_shot is None and "source_shot" not in idf.CONFIG
    assert idf.NUM_DIFFUSION_STEPS == 2 and idf.TIMESTEP_RESPACING is None
    pre = base.preproc()
    assert tuple(pre.DEFAULT_TONGUE_PCA_SHAPE) == (10, 520, 3) and pre.SKIN_SELECT_DISTINCT_MAX_ITER == 787
    assert pre.PREPROC_OUTPUT_ROOT == "$A2F_WORKSPACE_ROOT/output_preproc"
    assert base.dataset().SHOT_EMOTION_NAMES == ["neutral"] and base.dataset().AUDIO_ROOT.to_dict() == {}


def test_bases_are_fresh_objects():
    first = base.train_regression()
    first.NETWORK_HYPER_PARAMS.w2v_num_layers = 7
    first.CLIPS.append("x")
    again = base.train_regression()
    assert again.NETWORK_HYPER_PARAMS.w2v_num_layers == 1 and again.CLIPS == []


def test_base_only_load_expands_paths_with_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("A2F_DATASETS_ROOT")
    monkeypatch.delenv("A2F_WORKSPACE_ROOT")
    monkeypatch.chdir(tmp_path)
    configs = config.load(None)
    assert configs.network_type == "regression"
    assert configs.train.TRAIN_OUTPUT_ROOT == str(tmp_path / "workspace" / "output_train")
    assert configs.preproc.PREPROC_OUTPUT_ROOT == str(tmp_path / "workspace" / "output_preproc")
    assert configs.modifiers == {"dataset": {}, "preproc": {}, "train": {}, "inference": {}}


# --- example configs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_configs_resolve(name, tmp_path):
    configs = config.load(ROOT / "configs" / name)
    diffusion = "diffusion" in name
    assert configs.network_type == ("diffusion" if diffusion else "regression")
    assert configs.train.RUN_NAME == name
    assert configs.train.NETWORK_VERSION == ("3.1" if diffusion else "2.3")
    assert configs.preproc.RUN_NAME == ("example-min" if name.endswith("-min") else "example")
    ds = configs.dataset
    assert ds.ACTOR_NAMES == ["claire"] and ds.CACHE_FPS.claire == 30.0
    assert ds.SHOT_EMOTION_NAMES == [
        "neutral", "amazement", "anger", "cheekiness", "disgust", "fear",
        "grief", "joy", "outofbreath", "pain", "sadness",
    ]
    claire = str(tmp_path / "ds" / "Audio2Face-3D-Dataset-v1.0.0-claire" / "data" / "claire")
    assert ds.AUDIO_ROOT.claire == claire + "/audio"
    assert ds.SKIN_CACHE_ROOT.claire == claire + "/cache/skin"
    if name.endswith("-min"):
        assert ds.SKIN_NEUTRAL_FPATH.to_dict() == {} and ds.TONGUE_CACHE_ROOT.to_dict() == {}
    else:
        assert ds.EYE_SACCADE_ROTATIONS_FPATH.claire == claire + "/xform/eye_saccade_rotations.npy"
    assert (ds.TRANSFORM_SCALE.to_dict() != {}) == diffusion
    tr = configs.train
    assert len(tr.CLIPS) == 54 and len(tr.AUG_MUTED_SHOTS) == 11
    assert sum(clip[4] == "zh" for clip in tr.CLIPS) == 45
    assert tr.CLIPS[0] == ["claire", "cp1_neutral", [0, 348], "claire", "zh", "cp1_neutral.wav", 0]
    assert tr.CLIPS[-1] == ["claire", "eg9_neutral", [0, 379], "claire", "en", "eg9_neutral.wav", 0]
    assert tr.AUG_MUTED_SHOTS[1] == ["claire", ["cp23_amazement", 479], 120, "amazement"]
    assert sorted(m[3] for m in tr.AUG_MUTED_SHOTS) == sorted(ds.SHOT_EMOTION_NAMES)
    assert tr.PREPROC_RUN_NAME_FULL.claire == "XXXXXX_XXXXXX_example"
    assert tr.PREPROC_ROOT == str(tmp_path / "ws" / "output_preproc")
    if diffusion:
        assert tr.NUM_EPOCHS == 400 and tr.LOSS_LIP_DIST_ALPHA == 1e-5
        inf = configs.inference
        assert (inf.TIMESTEP_RESPACING, inf.INFERENCE_MODE, inf.ACTOR_NAME) == ("2", "offline", "claire")
        assert inf.AUDIO_PATH == claire + "/audio/eg1_neutral.wav"
        assert inf.CONFIG.upper_face_smoothing == 0.003
    else:
        assert tr.NUM_EPOCHS == 50 and tr.LOSS_LIP_DIST_ALPHA == 100.0
        assert tr.LOSS_PHONEME_ALPHA is None and tr.LOSS_PHONEME_MOTION_ALPHA is None
        cfg = configs.inference.CONFIG
        assert (cfg.source_shot, cfg.source_frame, cfg.upper_face_smoothing) == ("cp1_neutral", 220, 0.001)


def test_original_module_style_equals_get_config_style():
    ours = config.load(ROOT / "configs" / "example-regression")
    theirs = config.load(ORIGINAL_STYLE)
    for name in ("dataset", "preproc", "train", "inference"):
        assert theirs.get(name) == ours.get(name), name
    assert theirs.modifiers == ours.modifiers
    assert "os" not in theirs.modifiers["train"]  # a module import is not a parameter


@pytest.mark.parametrize("name", EXAMPLES)
def test_json_round_trip(name):
    configs = config.load(ROOT / "configs" / name, ["train.BATCH_SIZE=4"])
    text = configs.to_json()
    again = Configs.from_json(text)
    for part in ("dataset", "preproc", "train", "inference"):
        assert isinstance(again.get(part), ml_collections.ConfigDict)
        assert again.get(part) == configs.get(part), part
    assert again.network_type == configs.network_type and again.modifiers == configs.modifiers
    assert again.config_dir == configs.config_dir
    assert json.loads(again.to_json()) == json.loads(text)


def test_modifiers_are_raw_json_able_overrides():
    configs = config.load(ROOT / "configs" / "example-regression", ["dataset.CACHE_FPS.claire=60"])
    mods = configs.modifiers
    json.dumps(mods)
    assert mods["dataset"]["AUDIO_ROOT"]["claire"].startswith("$A2F_DATASETS_ROOT/")  # unexpanded
    assert mods["dataset"]["CACHE_FPS"] == {"claire": 60}
    assert mods["inference"] == {"CONFIG": {"source_shot": "cp1_neutral", "source_frame": 220}}
    assert "BATCH_SIZE" not in mods["train"]


# --- merge rules -------------------------------------------------------------------------------------


def test_merge_deep_merges_dicts_and_replaces_lists(tmp_path):
    d = write_dir(
        tmp_path / "c",
        train="""
        NETWORK_TYPE = "regression"
        NETWORK_HYPER_PARAMS = {"w2v_num_layers": 3, "autocorr_params": {"num_autocorr": 16}}
        TARGET_CHANNELS = ["skin_coeffs"]
        AUGMENT = {"pitch_shift": {"min_semitones": -1, "max_semitones": 1, "p": 0.5}}
        PRETRAINED_NET_FPATH = "$A2F_WORKSPACE_ROOT/net.pth"
        LOSS_LIP_DIST_EMO_WEIGHTS = {"joy": 2.0}
        TARGET_FPS = 60
        """,
        inference="""
        CONFIG = {"source_shot": "shot1", "skin_strength": 2}
        """,
    )
    configs = config.load(d)
    hp = configs.train.NETWORK_HYPER_PARAMS
    assert hp.w2v_num_layers == 3 and hp.use_w2v_features is True
    assert hp.autocorr_params.num_autocorr == 16 and hp.autocorr_params.win_len == 640
    assert configs.train.TARGET_CHANNELS == ["skin_coeffs"]
    assert configs.train.AUGMENT.timeshift == 1.0 and configs.train.AUGMENT.pitch_shift.p == 0.5
    assert configs.train.PRETRAINED_NET_FPATH == str(tmp_path / "ws" / "net.pth")
    assert configs.train.LOSS_LIP_DIST_EMO_WEIGHTS.joy == 2.0
    assert isinstance(configs.train.TARGET_FPS, float) and configs.train.TARGET_FPS == 60.0
    cfg = configs.inference.CONFIG
    assert cfg.source_shot == "shot1" and cfg.skin_strength == 2.0 and cfg.input_strength == 1.3


def test_get_config_may_return_a_plain_dict(tmp_path):
    d = write_dir(
        tmp_path / "c",
        dataset="""
        def get_config():
            return {"ACTOR_NAMES": ["a"], "AUDIO_ROOT": {"a": "/x"}, "SKIN_CACHE_ROOT": {"a": "/y"},
                    "CACHE_FPS": {"a": 30}}
        """,
    )
    configs = config.load(d)
    assert configs.dataset.ACTOR_NAMES == ["a"] and configs.dataset.CACHE_FPS.a == 30


def test_per_actor_dicts_take_any_actor_and_resolve_with_default(tmp_path):
    d = write_dir(
        tmp_path / "c",
        dataset="""
        ACTOR_NAMES = ["mark", "claire"]
        AUDIO_ROOT = {"mark": "/a/mark", "claire": "/a/claire"}
        SKIN_CACHE_ROOT = {"mark": "/s/mark", "claire": "/s/claire"}
        CACHE_FPS = {"mark": 30.0, "claire": 60.0}
        SKIN_NEUTRAL_FPATH = {"mark": "/n.npy"}
        TRANSFORM_SCALE = {"mark": {"skin": 2.0}}
        """,
    )
    ds = config.load(d).dataset
    assert resolve_actor_value(ds.SKIN_NEUTRAL_FPATH, "mark", None) == "/n.npy"
    assert resolve_actor_value(ds.SKIN_NEUTRAL_FPATH, "claire", "default") == "default"
    assert resolve_actor_value(ds.TRANSFORM_SCALE, "mark", {}).skin == 2.0
    assert resolve_actor_value(None, "mark", 5) == 5


# --- validation errors -------------------------------------------------------------------------------


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    d = write_dir(tmp_path / "c", train='NETWORK_TYPE = "regression"\nBATCH_SZIE = 4\n')
    with pytest.raises(ConfigError) as err:
        config.load(d)
    msg = str(err.value)
    assert "config_train.py" in msg and "'BATCH_SZIE'" in msg and "did you mean 'BATCH_SIZE'" in msg


def test_unknown_nested_key_is_reported_with_its_path(tmp_path):
    d = write_dir(
        tmp_path / "c",
        train='NETWORK_TYPE = "diffusion"\nNETWORK_HYPER_PARAMS = {"num_gru_layer": 3}\n',
    )
    with pytest.raises(ConfigError, match=r"NETWORK_HYPER_PARAMS\.num_gru_layer.*did you mean 'num_gru_layers'"):
        config.load(d)


def test_lowercase_helper_in_module_style_is_an_unknown_key(tmp_path):
    d = write_dir(tmp_path / "c", dataset='root = "/data"\n_private = 1\n')
    with pytest.raises(ConfigError, match=r"config_dataset\.py: unknown config key 'root'"):
        config.load(d)


@pytest.mark.parametrize(
    "line, fragment",
    [
        ('BATCH_SIZE = "32"', r"\[BATCH_SIZE\]: expected int, found str '32'"),
        ("BATCH_SIZE = True", r"\[BATCH_SIZE\]: expected int, found bool"),
        ("TARGET_FPS = None", r"\[TARGET_FPS\]: expected float \(None is not allowed here\), found None"),
        ('LEARNING_RATE = "1e-3"', r"\[LEARNING_RATE\]: expected float \(or int\), found str"),
        ("TARGET_CHANNELS = 'jaw'", r"\[TARGET_CHANNELS\]: expected list \(or tuple\), found str"),
        ("PREPROC_RUN_NAME_FULL = 'x'", r"\[PREPROC_RUN_NAME_FULL\]: expected dict keyed by actor name, found str"),
        ("NETWORK_HYPER_PARAMS = {'w2v_num_layers': 1.5}",
         r"\[NETWORK_HYPER_PARAMS\.w2v_num_layers\]: expected int, found float"),
    ],
)
def test_wrong_type_names_key_expected_and_found(tmp_path, line, fragment):
    d = write_dir(tmp_path / "c", train=f'NETWORK_TYPE = "regression"\n{line}\n')
    with pytest.raises(ConfigError, match=r"config_train\.py " + fragment):
        config.load(d)


def test_accepted_type_variants(tmp_path):
    d = write_dir(
        tmp_path / "c",
        train="""
        NETWORK_TYPE = "regression"
        AUG_MUTED_AUDIO_NOISE_LOCAL_SCALE_RANGE = [0.2, 0.8]
        TARGET_CHANNELS = ("skin_coeffs", "jaw")
        LOSS_PHONEME_ALPHA = None
        SHOT_EMOTION_NAME_FOR_ALL_ZEROS = None
        MAX_TRAIN_STEPS = 10
        """,
    )
    tr = config.load(d).train
    assert tr.AUG_MUTED_AUDIO_NOISE_LOCAL_SCALE_RANGE == [0.2, 0.8]
    assert tr.TARGET_CHANNELS == ["skin_coeffs", "jaw"]
    assert tr.LOSS_PHONEME_ALPHA is None and tr.SHOT_EMOTION_NAME_FOR_ALL_ZEROS is None
    assert tr.MAX_TRAIN_STEPS == 10
    tr.MAX_TRAIN_STEPS = 20  # a loaded ConfigDict stays editable
    assert tr.MAX_TRAIN_STEPS == 20
    assert tr.PRETRAINED_NET_FPATH is None
    tr.PRETRAINED_NET_FPATH = "/net.pth"  # None default -> value
    tr.PREPROC_RUN_NAME_FULL = {"mark": "latest"}  # per-actor dict -> other actor keys
    assert tr.PRETRAINED_NET_FPATH == "/net.pth" and tr.PREPROC_RUN_NAME_FULL.to_dict() == {"mark": "latest"}


def test_resolved_configs_are_locked(tmp_path):
    """A misspelt key cannot be added to a resolved config (read or set, top level or nested), nor to one
    read back from JSON; existing keys stay editable."""
    configs = config.load(None)
    for cfg in (configs.train, configs.dataset, Configs.from_json(configs.to_json()).train):
        with pytest.raises(AttributeError, match="locked"):
            cfg.BATCH_SZE = 4  # the typo is the point
        with pytest.raises(KeyError, match="locked"):
            cfg["BATCH_SZE"] = 4
        with pytest.raises(AttributeError):
            cfg.BATCH_SZE  # noqa: B018
    with pytest.raises(AttributeError, match="locked"):
        configs.train.AUDIO_PARAMS.buffer_length = 1
    configs.train.BATCH_SIZE = 4
    assert configs.train.BATCH_SIZE == 4


@pytest.mark.parametrize("key", ["AUDIO_ROOT", "SKIN_CACHE_ROOT", "CACHE_FPS"])
def test_missing_mandatory_actor_value(tmp_path, key):
    values = {
        "AUDIO_ROOT": '{"a": "/x", "b": "/x"}',
        "SKIN_CACHE_ROOT": '{"a": "/x", "b": "/x"}',
        "CACHE_FPS": '{"a": 30.0, "b": 30.0}',
    }
    values[key] = values[key].split(", ")[0] + "}"
    text = 'ACTOR_NAMES = ["a", "b"]\n' + "".join(f"{k} = {v}\n" for k, v in values.items())
    d = write_dir(tmp_path / "c", dataset=text)
    with pytest.raises(ConfigError) as err:
        config.load(d)
    msg = str(err.value)
    assert "config_dataset.py" in msg and f"[{key}]" in msg and "['b']" in msg and "ACTOR_NAMES" in msg


def test_network_type_rules(tmp_path):
    with pytest.raises(ConfigError, match=r"config_train\.py \[NETWORK_TYPE\]: expected 'regression' or 'diffusion'"):
        config.load(write_dir(tmp_path / "a", train="BATCH_SIZE = 4\n"))
    with pytest.raises(ConfigError, match=r"\[NETWORK_TYPE\]: expected one of .*found 'gan'"):
        config.load(write_dir(tmp_path / "b", train='NETWORK_TYPE = "gan"\n'))
    with pytest.raises(ConfigError, match=r"expected 'diffusion' \(requested\), found 'regression'"):
        config.load(ROOT / "configs" / "example-regression", network_type="diffusion")
    assert config.load(None, network_type="diffusion").train.NETWORK_NAME == "diffusion_rnn"
    # A diffusion-only key is unknown to a regression config.
    with pytest.raises(ConfigError, match=r"unknown config key 'DIFFUSION_STEPS'"):
        config.load(write_dir(tmp_path / "c", train='NETWORK_TYPE = "regression"\nDIFFUSION_STEPS = 10\n'))


def test_broken_config_file_is_reported(tmp_path):
    d = write_dir(tmp_path / "c", preproc="RUN_NAME = undefined_name\n")
    with pytest.raises(ConfigError, match=r"config_preproc\.py: failed to execute config file: NameError"):
        config.load(d)
    with pytest.raises(ConfigError, match="expected a config directory"):
        config.load(tmp_path / "missing")


# --- overrides ---------------------------------------------------------------------------------------


def test_overrides_reach_nested_and_per_actor_keys():
    configs = config.load(
        ROOT / "configs" / "example-regression",
        [
            "train.BATCH_SIZE=4",
            "dataset.CACHE_FPS.synth=30",
            "train.NETWORK_HYPER_PARAMS.w2v_num_layers=2",
            "NUM_EPOCHS=3",
            "train.CLIPS=[]",
            "inference.CONFIG.source_frame=5",
            "preproc.RUN_INFO=some words",
            "train.PRETRAINED_NET_FPATH=None",
        ],
    )
    tr = configs.train
    assert tr.BATCH_SIZE == 4 and tr.NUM_EPOCHS == 3 and tr.CLIPS == []
    assert tr.NETWORK_HYPER_PARAMS.w2v_num_layers == 2 and tr.NETWORK_HYPER_PARAMS.w2v_freeze is True
    assert configs.dataset.CACHE_FPS.to_dict() == {"claire": 30.0, "synth": 30}
    assert configs.inference.CONFIG.source_frame == 5 and configs.inference.CONFIG.source_shot == "cp1_neutral"
    assert configs.preproc.RUN_INFO == "some words"
    assert configs.modifiers["train"]["BATCH_SIZE"] == 4
    assert len(configs.modifiers["train"]["AUG_MUTED_SHOTS"]) == 11  # file modifiers kept


def test_override_network_type_switches_bases(tmp_path):
    d = write_dir(tmp_path / "c", train='NETWORK_TYPE = "regression"\nNUM_EPOCHS = 7\n')
    configs = config.load(d, ["train.NETWORK_TYPE=diffusion"])
    assert configs.network_type == "diffusion" and configs.train.NETWORK_NAME == "diffusion_rnn"
    assert configs.train.BATCH_SIZE == 1 and configs.train.NUM_EPOCHS == 7
    assert configs.inference.NUM_DIFFUSION_STEPS == 2
    # The regression example holds regression-only keys, which the diffusion base rejects.
    with pytest.raises(ConfigError, match=r"config_train\.py: unknown config key 'LOSS_PHONEME_ALPHA'"):
        config.load(ROOT / "configs" / "example-regression", ["NETWORK_TYPE=diffusion"])


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("train.BATCH_SZE=4", r"command line override 'train\.BATCH_SZE=4': unknown config key 'BATCH_SZE' "
                              r"\(did you mean 'BATCH_SIZE'\?\)"),
        ("BACH_SIZE=4", r"unknown config key 'BACH_SIZE' \(did you mean 'BATCH_SIZE'\?\)"),
        ("trian.BATCH_SIZE=4", r"unknown config 'trian' \(did you mean 'train'\?\)"),
        ("RUN_NAME=x", r"'RUN_NAME' exists in several configs; write preproc\.RUN_NAME or train\.RUN_NAME"),
        ("train.BATCH_SIZE=four", r"\[BATCH_SIZE\]: expected int, found str 'four'"),
        ("train.BATCH_SIZE", r"expected KEY=VALUE"),
        ("train.NETWORK_HYPER_PARAMS.w2v_layers=2",
         r"'NETWORK_HYPER_PARAMS\.w2v_layers' \(did you mean 'w2v_num_layers'"),
    ],
)
def test_bad_overrides(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config.load(ROOT / "configs" / "example-regression", [override])


def test_parse_value():
    assert config.parse_value("4") == 4 and config.parse_value("1e-3") == 1e-3
    assert config.parse_value("None") is None and config.parse_value("[1, (2, 3)]") == [1, (2, 3)]
    assert config.parse_value("hello world") == "hello world" and config.parse_value("'4'") == "4"
    assert config.parse_value("/path/to/x.wav") == "/path/to/x.wav"


def test_paths_become_strings_and_non_json_values_are_rejected(tmp_path):
    d = write_dir(
        tmp_path / "c",
        dataset="""
        import pathlib
        ACTOR_NAMES = ["a"]
        AUDIO_ROOT = {"a": pathlib.Path("/x/audio")}
        SKIN_CACHE_ROOT = {"a": "/x/skin"}
        CACHE_FPS = {"a": 30}
        """,
    )
    assert config.load(d).dataset.AUDIO_ROOT.a == "/x/audio"
    d = write_dir(tmp_path / "e", dataset="import fractions\nCACHE_FPS = {'a': fractions.Fraction(1, 3)}\n")
    with pytest.raises(ConfigError, match=r"config_dataset\.py \[CACHE_FPS\.a\]: expected a JSON-compatible value"):
        config.load(d)


@pytest.mark.parametrize("fps", ["'30'", "0", "-1.0", "True"])
def test_cache_fps_must_be_a_positive_number(tmp_path, fps):
    d = write_dir(tmp_path / "c", dataset=f"CACHE_FPS = {{'a': {fps}}}\n")
    with pytest.raises(ConfigError, match=r"config_dataset\.py \[CACHE_FPS\['a'\]\]: expected a positive number"):
        config.load(d)


def test_missing_actor_value_suggests_a_misspelt_actor(tmp_path):
    d = write_dir(
        tmp_path / "c",
        dataset="ACTOR_NAMES = ['claire']\nAUDIO_ROOT = {'clarie': '/a'}\n",
    )
    with pytest.raises(ConfigError, match=r"\[AUDIO_ROOT\].*found none for \['claire'\] \(it has \['clarie'\] "
                                          r"\(did you mean 'clarie'\?\)\)"):
        config.load(d)
