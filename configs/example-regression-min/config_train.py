"""Training of the example.

Same values as the original's configs/example-regression-min/config_train.py. Run:
    python scripts/train.py --config configs/example-regression-min \
        --config.train.PREPROC_RUN_NAME_FULL.claire=latest
PREPROC_RUN_NAME_FULL holds the original's placeholder: replace it with the run name printed at the end
of preprocessing, or pass "latest" (the newest preprocessing run of the actor) as above.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            "RUN_NAME": "example-regression-min",
            "RUN_INFO": "Minimal training setup - only requires AUDIO_ROOT and SKIN_CACHE_ROOT",
            "NETWORK_VERSION": "2.3",
            "NETWORK_TYPE": "regression",
            "PREPROC_ROOT": "$A2F_WORKSPACE_ROOT/output_preproc",
            "PREPROC_RUN_NAME_FULL": {
                "claire": "XXXXXX_XXXXXX_example",
            },
            "CLIPS": [
                ("claire", "cp1_neutral", (0, 348), "claire", "zh", "cp1_neutral.wav", 0),
                ("claire", "cp2_neutral", (0, 343), "claire", "zh", "cp2_neutral.wav", 0),
                ("claire", "cp3_neutral", (0, 337), "claire", "zh", "cp3_neutral.wav", 0),
                ("claire", "cp4_neutral", (0, 355), "claire", "zh", "cp4_neutral.wav", 0),
                ("claire", "cp5_neutral", (0, 319), "claire", "zh", "cp5_neutral.wav", 0),
                ("claire", "cp6_neutral", (0, 283), "claire", "zh", "cp6_neutral.wav", 0),
                ("claire", "cp7_neutral", (0, 250), "claire", "zh", "cp7_neutral.wav", 0),
                ("claire", "cp8_neutral", (0, 349), "claire", "zh", "cp8_neutral.wav", 0),
                ("claire", "cp9_neutral", (0, 396), "claire", "zh", "cp9_neutral.wav", 0),
                ("claire", "cp10_neutral", (0, 318), "claire", "zh", "cp10_neutral.wav", 0),
                ("claire", "cp11_neutral", (0, 318), "claire", "zh", "cp11_neutral.wav", 0),
                ("claire", "cp12_neutral", (0, 332), "claire", "zh", "cp12_neutral.wav", 0),
                ("claire", "cp13_neutral", (0, 295), "claire", "zh", "cp13_neutral.wav", 0),
                ("claire", "cp14_neutral", (0, 302), "claire", "zh", "cp14_neutral.wav", 0),
                ("claire", "cp15_neutral", (0, 402), "claire", "zh", "cp15_neutral.wav", 0),
                ("claire", "cp16_neutral", (0, 389), "claire", "zh", "cp16_neutral.wav", 0),
                ("claire", "cp17_neutral", (0, 372), "claire", "zh", "cp17_neutral.wav", 0),
                ("claire", "cp18_neutral", (0, 279), "claire", "zh", "cp18_neutral.wav", 0),
                ("claire", "cp19_neutral", (0, 280), "claire", "zh", "cp19_neutral.wav", 0),
                ("claire", "cp20_neutral", (0, 288), "claire", "zh", "cp20_neutral.wav", 0),
                ("claire", "cp21_neutral", (0, 550), "claire", "zh", "cp21_neutral.wav", 0),
                ("claire", "cp22_amazement", (0, 281), "claire", "zh", "cp22_amazement.wav", 0),
                ("claire", "cp23_amazement", (0, 526), "claire", "zh", "cp23_amazement.wav", 0),
                ("claire", "cp24_joy", (0, 272), "claire", "zh", "cp24_joy.wav", 0),
                ("claire", "cp25_joy", (0, 494), "claire", "zh", "cp25_joy.wav", 0),
                ("claire", "cp26_cheekiness", (0, 303), "claire", "zh", "cp26_cheekiness.wav", 0),
                ("claire", "cp27_cheekiness", (0, 574), "claire", "zh", "cp27_cheekiness.wav", 0),
                ("claire", "cp28_sadness", (0, 272), "claire", "zh", "cp28_sadness.wav", 0),
                ("claire", "cp29_sadness", (0, 710), "claire", "zh", "cp29_sadness.wav", 0),
                ("claire", "cp30_disgust", (0, 316), "claire", "zh", "cp30_disgust.wav", 0),
                ("claire", "cp31_disgust", (0, 681), "claire", "zh", "cp31_disgust.wav", 0),
                ("claire", "cp32_anger", (0, 238), "claire", "zh", "cp32_anger.wav", 0),
                ("claire", "cp33_anger", (0, 503), "claire", "zh", "cp33_anger.wav", 0),
                ("claire", "cp34_fear", (0, 286), "claire", "zh", "cp34_fear.wav", 0),
                ("claire", "cp35_fear", (0, 595), "claire", "zh", "cp35_fear.wav", 0),
                ("claire", "cp36_grief", (0, 370), "claire", "zh", "cp36_grief.wav", 0),
                ("claire", "cp37_grief", (0, 660), "claire", "zh", "cp37_grief.wav", 0),
                ("claire", "cp38_pain", (0, 296), "claire", "zh", "cp38_pain.wav", 0),
                ("claire", "cp39_pain", (0, 548), "claire", "zh", "cp39_pain.wav", 0),
                ("claire", "cp40_outofbreath", (0, 292), "claire", "zh", "cp40_outofbreath.wav", 0),
                ("claire", "cp41_outofbreath", (0, 503), "claire", "zh", "cp41_outofbreath.wav", 0),
                ("claire", "cp42_fastneutral", (0, 131), "claire", "zh", "cp42_fastneutral.wav", 0),
                ("claire", "cp43_fastneutral", (0, 270), "claire", "zh", "cp43_fastneutral.wav", 0),
                ("claire", "cp44_slowneutral", (0, 370), "claire", "zh", "cp44_slowneutral.wav", 0),
                ("claire", "cp45_slowneutral", (0, 652), "claire", "zh", "cp45_slowneutral.wav", 0),
                ("claire", "eg1_neutral", (0, 319), "claire", "en", "eg1_neutral.wav", 0),
                ("claire", "eg2_neutral", (0, 386), "claire", "en", "eg2_neutral.wav", 0),
                ("claire", "eg3_neutral", (0, 194), "claire", "en", "eg3_neutral.wav", 0),
                ("claire", "eg4_neutral", (0, 276), "claire", "en", "eg4_neutral.wav", 0),
                ("claire", "eg5_neutral", (0, 478), "claire", "en", "eg5_neutral.wav", 0),
                ("claire", "eg6_neutral", (0, 275), "claire", "en", "eg6_neutral.wav", 0),
                ("claire", "eg7_neutral", (0, 533), "claire", "en", "eg7_neutral.wav", 0),
                ("claire", "eg8_neutral", (0, 897), "claire", "en", "eg8_neutral.wav", 0),
                ("claire", "eg9_neutral", (0, 379), "claire", "en", "eg9_neutral.wav", 0),
            ],
            "AUG_MUTED_SHOTS": [
                ("claire", ("cp1_neutral", 0), 120, "neutral"),
                ("claire", ("cp23_amazement", 479), 120, "amazement"),
                ("claire", ("cp24_joy", 9), 120, "joy"),
                ("claire", ("cp26_cheekiness", 12), 120, "cheekiness"),
                ("claire", ("cp28_sadness", 0), 120, "sadness"),
                ("claire", ("cp30_disgust", 0), 120, "disgust"),
                ("claire", ("cp33_anger", 191), 120, "anger"),
                ("claire", ("cp35_fear", 22), 120, "fear"),
                ("claire", ("cp36_grief", 0), 120, "grief"),
                ("claire", ("cp38_pain", 0), 120, "pain"),
                ("claire", ("cp41_outofbreath", 485), 120, "outofbreath"),
            ],
            "NUM_EPOCHS": 50,
            "LOSS_LIP_DIST_ALPHA": 100.0,
            "LOSS_PHONEME_ALPHA": None,
            "LOSS_PHONEME_MOTION_ALPHA": None,
        }
    )
