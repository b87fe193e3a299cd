"""Pieces both networks share: the held-out split, the feed handed to the loop, the validation log line."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

from a2f_jax.train.dataset import TrainingData, build_clips

log = logging.getLogger(__name__)


def split_validation(data: TrainingData, tcfg: Any, dcfg: Any) -> tuple[list, list]:
    """(training clips, held-out clips): VALIDATION_CLIPS (CLIPS format) are removed from the training set."""
    val = build_clips(tcfg.VALIDATION_CLIPS or [], data, dcfg, key="VALIDATION_CLIPS")
    held = {(c.actor, c.shot) for c in val}
    return [c for c in data.clips if (c.actor, c.shot) not in held], val


def _no_stats() -> dict[str, float]:
    return {}


@dataclasses.dataclass(frozen=True)
class Feed:
    """What a network's `feed(...)` yields to the training entry: `batch(step)` is the (device) batch of a global
    step, `stats()` the input-pipeline scalars logged with every log line (none by default)."""

    batch: Callable[[int], Any]
    stats: Callable[[], dict[str, float]] = _no_stats


def log_validation(out: dict[str, float]) -> dict[str, float]:
    log.info("validation: %s", " ".join(f"{k}={v:.4g}" for k, v in out.items()))
    return out
