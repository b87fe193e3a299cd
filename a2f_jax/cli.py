"""Command line of every a2f-jax script: `--config DIR`, `--config.<file>.<KEY>=value`, `--print-config`,
`--debug`, and the guard that turns errors into one `error: ...` line.

    python scripts/train.py --config configs/example-regression \
        --config.train.BATCH_SIZE=4 --config.dataset.CACHE_FPS.claire 30

An override is `--config.<file>.<KEY>[.<subkey>...]` followed by `=value` or by the value as the
next argument; `<file>` (dataset, preproc, train, inference) may be left out when only one config
has that key. Values are Python literals (`4`, `1e-3`, `None`, `[1, 2]`), anything else a string.

Every script's `main(argv) -> int` is wrapped by `main_guard`: the project's errors (`A2FError`) and the
known library errors (file system, orbax, onnxruntime, msgpack, jax sharding) end the script with one
`error: ...` line on stderr and exit code 2 (3 for `TrainingStopped`); anything else is an internal
error (exit 1), Ctrl-C exits 130. `--debug` prints the traceback as well.
"""

from __future__ import annotations

import argparse
import errno
import functools
import sys
import traceback
from typing import Any, Callable, Sequence

from a2f_jax.errors import A2FError, ConfigError

_PREFIX = "--config."
DEBUG_FLAG = "--debug"
EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
_DEBUG_HINT = "(run with --debug for the traceback)"
_MAX_MESSAGE = 800  # characters of a library's message kept on the one error line

# Libraries whose errors are about the user's files, setup or machine, not bugs of a2f-jax: (module prefix, label,
# class names or None for all). Matched against the module of the exception's class, and for _FRAME_LIBRARIES also
# against the innermost frame that raised it (their C extensions raise builtin errors, e.g. msgpack's "Unpack failed:
# incomplete input" out of flax.serialization). Of jax only the sharding and runtime (device, memory) errors count:
# its tracing errors are bugs.
_LIBRARIES = (
    ("orbax", "checkpoint (orbax)", None),
    ("onnxruntime", "onnxruntime", None),
    ("msgpack", "msgpack", None),
    ("flax.serialization", "flax serialization", None),
    ("onnx", "onnx", None),
    ("google.protobuf", "protobuf", None),
    ("soundfile", "soundfile", None),
    ("jax", "jax", ("IndivisibleError", "XlaRuntimeError", "JaxRuntimeError")),
    ("jaxlib", "jax", ("IndivisibleError", "XlaRuntimeError", "JaxRuntimeError")),
)
_FRAME_LIBRARIES = ("orbax", "onnxruntime", "msgpack", "flax.serialization")
_OS_HINTS = {
    errno.EACCES: "check the folder's permissions: a read-only workspace?",
    errno.EPERM: "check the folder's permissions: a read-only workspace?",
    errno.ENOSPC: "the disk is full",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
}


class UsageError(ConfigError):
    """A command-line argument is missing, unknown or malformed."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with `--debug`, whose usage errors raise `UsageError` (one `error:` line through the guard)
    instead of printing the usage and exiting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(DEBUG_FLAG, action="store_true", help="print the full traceback of an error")

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"command line of {self.prog}: {message} (see --help)")


# ------------------------------------------------------------------------------------------------ guard


def main_guard(main: Callable[[list[str] | None], int | None]) -> Callable[[list[str] | None], int]:
    """Wrap a script's `main(argv)` so that it returns an exit code and reports errors on one stderr line.

    `--debug` anywhere in argv also prints the traceback (the exit code stays the same)."""

    @functools.wraps(main)
    def guarded(argv: list[str] | None = None) -> int:
        argv = list(sys.argv[1:] if argv is None else argv)
        return run_guarded(lambda: main(argv), debug=DEBUG_FLAG in argv)

    return guarded


def run_guarded(fn: Callable[[], int | None], debug: bool = False) -> int:
    """Run `fn`; its return value (None: 0) or the exit code of the error it raised, reported on stderr."""
    try:
        code = fn()
    except SystemExit:
        raise  # argparse --help, --print-config: their own exit code
    except BaseException as exc:  # noqa: BLE001 - the one place every error of a script ends
        code, message = classify(exc)
        sys.stdout.flush()
        if debug:
            traceback.print_exc(file=sys.stderr)
        print(f"error: {message}", file=sys.stderr, flush=True)
        return code
    return 0 if code is None else int(code)


def classify(exc: BaseException) -> tuple[int, str]:
    """(exit code, message without the `error: ` prefix) for an exception that ended a script."""
    if isinstance(exc, A2FError):
        return exc.exit_code, str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted (Ctrl-C)"
    if isinstance(exc, OSError) and not _library(exc, frames=False):
        return EXIT_USAGE, os_error_message(exc)
    library = _library(exc)
    if library is not None:
        return EXIT_USAGE, f"{library}: {type(exc).__name__}: {_one_line(exc)} {_DEBUG_HINT}"
    return EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {_one_line(exc)} {_DEBUG_HINT}"


def os_error_message(exc: OSError) -> str:
    """`<path>: <reason>` for a file system error, with a hint for the usual causes."""
    if exc.filename is None:
        return _one_line(exc)
    where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
    reason = exc.strerror or type(exc).__name__
    hint = _OS_HINTS.get(exc.errno)
    return f"{where}: {reason}" + (f" ({hint})" if hint else "")


def _library(exc: BaseException, frames: bool = True) -> str | None:
    """The known library an exception comes from: by its class's module, else by the frame that raised it."""
    module, name = type(exc).__module__ or "", type(exc).__name__
    for prefix, label, classes in _LIBRARIES:
        if _in_package(module, prefix) and (classes is None or name in classes):
            return label
    if not frames:
        return None
    tb, innermost = exc.__traceback__, None
    while tb is not None:
        innermost, tb = tb, tb.tb_next
    raiser = "" if innermost is None else str(innermost.tb_frame.f_globals.get("__name__", ""))
    for prefix, label, _ in _LIBRARIES:
        if prefix in _FRAME_LIBRARIES and _in_package(raiser, prefix):
            return label
    return None


def _in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _one_line(exc: BaseException) -> str:
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip()) or repr(exc)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


# ----------------------------------------------------------------------------------------- config args


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
) -> ArgumentParser:
    parser = ArgumentParser(
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
) -> tuple[Any, argparse.Namespace]:
    """Parse argv into the resolved configs (`a2f_jax.config.Configs`) and the script's other options.

    `extra_args(parser)` lets a script add its own options. Bad arguments or config input raise
    `ConfigError` (`UsageError` for argparse's complaints) naming the file and key, which `main_guard`
    reports as one `error:` line with exit code 2; `--print-config` prints JSON and exits with status 0.
    """
    from a2f_jax.config import load  # here, so that importing the guard stays light

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(description, extra_args)
    overrides, rest = split_overrides(argv)
    args = parser.parse_args(rest)
    args.config_overrides = overrides
    configs = load(args.config, overrides)
    if args.print_config:
        print(configs.to_json())
        sys.exit(0)
    return configs, args
