"""docs/config_reference.md lists every key of the base configs, with the bases' defaults.

A key added to (or removed from) a base, or a changed default, fails here until the reference is updated.
"""

import ast
import pathlib
import re

import pytest

from a2f_jax.config import base

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "config_reference.md"
_ROW = re.compile(r"^\| `([A-Za-z_0-9]+)` \|(.*)\|\s*$")
_LITERAL = re.compile(r"^`([^`]*)`$")


def _sections() -> dict[str, str]:
    """'## config_<name>.py' heading -> its text."""
    parts = re.split(r"^## (config_\w+)\.py\s*$", DOC.read_text(), flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def _rows(text: str) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = _ROW.match(line)
        if m:
            rows.setdefault(m.group(1), [c.strip() for c in m.group(2).split("|")])
    return rows


def _norm(value):
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


def _check_default(cell: str, expected, where: str) -> None:
    """A cell that is one backticked Python literal must equal the base value; prose cells are skipped."""
    m = _LITERAL.match(cell)
    if not m:
        return
    try:
        value = ast.literal_eval(m.group(1))
    except (ValueError, SyntaxError):
        return
    assert _norm(value) == _norm(expected), f"{DOC.name} {where}: default {cell}, the base has {expected!r}"


CASES = {
    "config_dataset": {"": base.dataset().to_dict()},
    "config_preproc": {"": base.preproc().to_dict()},
    "config_train": {"regression": base.train_regression().to_dict(), "diffusion": base.train_diffusion().to_dict()},
    "config_inference": {
        "regression": base.inference_regression().to_dict(),
        "diffusion": base.inference_diffusion().to_dict(),
    },
}


@pytest.mark.parametrize("section", sorted(CASES))
def test_every_base_key_is_documented(section):
    text = _sections()[section]
    rows = _rows(text)
    bases = CASES[section]
    keys = {k for b in bases.values() for k in b}
    missing = sorted(k for k in keys if k not in rows)
    assert not missing, f"{DOC.name} ## {section}.py: no row for {missing}"
    upper_rows = {k for k in rows if k.isupper()}
    stale = sorted(upper_rows - keys)
    assert not stale, f"{DOC.name} ## {section}.py: rows for keys the bases do not have: {stale}"


@pytest.mark.parametrize("section", sorted(CASES))
def test_documented_defaults_match_the_bases(section):
    rows = _rows(_sections()[section])
    bases = CASES[section]
    for key, cells in rows.items():
        if not key.isupper():
            continue
        if list(bases) == [""]:
            _check_default(cells[0], bases[""][key], f"{key}")
            continue
        if section == "config_train":  # | key | regression | diffusion | origin | meaning |
            for col, kind in enumerate(("regression", "diffusion")):
                cell = cells[col]
                if cell == "—":
                    assert key not in bases[kind], f"{DOC.name} {key}: marked absent for {kind}, but the base has it"
                    continue
                assert key in bases[kind], f"{DOC.name} {key}: the {kind} base has no such key (mark it —)"
                _check_default(cell, bases[kind][key], f"{key} ({kind})")
        else:
            kind = "diffusion" if key in bases["diffusion"] else "regression"
            _check_default(cells[0], bases[kind][key], key)


def test_nested_keys_are_documented():
    train = _rows(_sections()["config_train"])
    for kind, cfg in (("regression", base.train_regression()), ("diffusion", base.train_diffusion())):
        for key, value in cfg.NETWORK_HYPER_PARAMS.to_dict().items():
            assert key in train, f"{DOC.name}: NETWORK_HYPER_PARAMS.{key} ({kind}) has no row"
            _check_default(train[key][0], value, f"NETWORK_HYPER_PARAMS.{key}")
    inference = _rows(_sections()["config_inference"])
    for kind, cfg in (("regression", base.inference_regression()), ("diffusion", base.inference_diffusion())):
        for key in cfg.CONFIG:
            assert key in inference, f"{DOC.name}: CONFIG.{key} ({kind}) has no row"
    regression_config = base.inference_regression().CONFIG.to_dict()
    for key, value in regression_config.items():
        if key != "upper_face_smoothing":
            _check_default(inference[key][0], value, f"CONFIG.{key}")
