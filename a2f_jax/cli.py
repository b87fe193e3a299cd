"""Command line of every a2f-jax script: `--config DIR`, `--config.<file>.<KEY>=value`, `--print-config`.

    python scripts/train.py --config configs/example-regression \
        --config.train.BATCH_SIZE=4 --config.dataset.CACHE_FPS.claire 30

An override is `--config.<file>.<KEY>[.<subkey>...]` followed by `=value` or by the value as the
next argument; `<file>` (dataset, preproc, train, inference) may be left out when only one config
has that key. Values are Python literals (`4`, `1e-3`, `None`, `[1, 2]`), anything else a string.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from a2f_jax.config import Configs, load
from a2f_jax.errors import ConfigError

_PREFIX = "--config."


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(`KEY=value` override strings, the remaining arguments) from raw argv."""
    overrides: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith(_PREFIX):
            key = arg[len(_PREFIX):]
            if "=" in key:
                overrides.append(key)
            elif i + 1 < len(argv):
                overrides.append(f"{key}={argv[i + 1]}")
                i += 1
            else:
                raise ConfigError(f"command line: expected a value after {arg}, found the end of the arguments")
        else:
            rest.append(arg)
        i += 1
    return overrides, rest


def build_parser(
    description: str = "", extra_args: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description,
        epilog="Overrides: --config.<file>.<KEY>=value, e.g. --config.train.BATCH_SIZE=4 "
        "--config.dataset.CACHE_FPS.claire=30 (file: dataset, preproc, train, inference).",
    )
    parser.add_argument("--config", required=True, metavar="DIR", help="config directory (config_*.py files)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved configs as JSON and exit")
    if extra_args is not None:
        extra_args(parser)
    return parser


def parse(
    argv: Sequence[str] | None = None,
    description: str = "",
    extra_args: Callable[[argparse.ArgumentParser], None] | None = None,
) -> tuple[Configs, argparse.Namespace]:
    """Parse argv into the resolved configs and the script's other options.

    `extra_args(parser)` lets a script add its own options. Bad config input exits with status 2 and a
    message naming the file and key; `--print-config` prints JSON and exits with status 0.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(description, extra_args)
    try:
        overrides, rest = split_overrides(argv)
    except ConfigError as exc:
        parser.error(str(exc))
    args = parser.parse_args(rest)
    args.config_overrides = overrides
    try:
        configs = load(args.config, overrides)
    except ConfigError as exc:
        parser.error(str(exc))
    if args.print_config:
        print(configs.to_json())
        sys.exit(0)
    return configs, args
