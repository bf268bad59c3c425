"""The commands behind ``python -m benchmark``."""

import errno
import sys

from fer_sklearn.architectures import get_spec, list_architectures

from . import runner
from .config import DATASET_KINDS, describe_profiles, resolve_config
from .config import FIELDS as CONFIG_FIELDS
from .progress import log, start_clock
from .store import WriteError, holding_run

CANNOT_WRITE = "cannot write {path}: {reason}. {remedy}"
# Before the remedy, where the disk is full.
FREE_SPACE = "Free some space or "
# What else to do about a failed write, per command.
WRITE_REMEDIES = {
    "run": ("pick a writable --out; finished units of the run are kept, so the same "
            "command plus --resume continues where it stopped."),
    "report": "make the run folder writable, and repeat the command.",
    "evaluate": ("make the run folder writable, and repeat the command (files are replaced "
                 "whole or not at all)."),
    "faces": "pick a writable --export folder or --grid path.",
    "perf": "pick a writable --out.",
}
CANNOT_READ = "cannot read {path}: {reason}."
DROP_WITHOUT_EXPORT = "--drop leaves classes out of an --export; without --export it has no use."
# Errors that only a write can meet: disk full, read-only file system, quota.
_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_WRITE_ERRNOS = _FULL_ERRNOS | {errno.EROFS}
INTERRUPTED = ("Interrupted. Finished units are saved in {run_dir}; continue with the same "
               "command plus --resume.")
INTERRUPTED_EARLY = ("Interrupted while the data were loading, before this run changed "
                     "anything in {run_dir}; start it again.")
INTERRUPTED_COMMAND = "Interrupted; every file is written whole or not at all, so none is half-written."


def _flags(args):
    return {k: v for k, v in vars(args).items() if k in CONFIG_FIELDS}


def cmd_run(args):
    config = resolve_config(args.config_file, **_flags(args))
    try:
        runner.run(config, resume=args.resume)
    except runner.InterruptedBeforeStart:
        print(INTERRUPTED_EARLY.format(run_dir=config.run_dir), file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(INTERRUPTED.format(run_dir=config.run_dir), file=sys.stderr)
        return 130
    return 0


def cmd_report(args):
    with holding_run(args.run_dir) as results:  # no run or evaluate writes it meanwhile
        path = runner.write_report(args.run_dir, results)
    log(f"report: {path}")
    return 0


def cmd_list(args):
    print("Architectures (--models):")
    for name in list_architectures():
        spec = get_spec(name)
        print(f"  {name:<22} [{spec.family}] {spec.description}")
    print("\nDatasets (--dataset):")
    for kind in DATASET_KINDS:
        print(f"  {kind}" + ("" if kind == "synthetic" else ":PATH"))
    print("\nProfiles (--profile):")
    for name, description in describe_profiles():
        print(f"  {name:<12} {description}")
    return 0


def cmd_faces(args):
    from . import faces

    # Without --n, each function's own default (2000 to export, 20000 to time).
    n = {} if args.n is None else {"n": args.n}
    if args.export:
        faces.export_faces(args.export, seed=args.seed, drop=args.drop or (), **n)
        return 0
    if args.drop:
        raise ValueError(DROP_WITHOUT_EXPORT)
    faces.run(grid=args.grid, seed=args.seed, **n)
    return 0


def cmd_perf(args):
    from . import perf

    perf.run(dataset=args.dataset, out=args.out, device=args.device,
             models=args.models or perf.FAMILIES, epochs=args.epochs)
    return 0


def cmd_evaluate(args):
    from .crossdata import evaluate_run

    evaluate_run(args.run_dir, args.dataset, dataset_root=args.dataset_root,
                 attributes=args.attributes, label=args.label, tta=args.tta)
    return 0


def main(args):
    """Run the parsed command; user errors end with a message, not a traceback."""
    commands = {"run": cmd_run, "report": cmd_report, "list": cmd_list, "faces": cmd_faces,
                "evaluate": cmd_evaluate, "perf": cmd_perf}
    start_clock()
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:  # `run` says more itself
        print(INTERRUPTED_COMMAND, file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # read-only folder, disk full, unreadable data, ...
        written = isinstance(exc, WriteError) or exc.errno in _WRITE_ERRNOS
        message = CANNOT_WRITE if written else CANNOT_READ
        remedy = WRITE_REMEDIES.get(args.command, "")
        if exc.errno in _FULL_ERRNOS:
            remedy = FREE_SPACE + remedy
        else:
            remedy = remedy[:1].upper() + remedy[1:]
        print("error: " + message.format(path=exc.filename or "a file", reason=exc.strerror or exc,
                                         remedy=remedy),
              file=sys.stderr)
        return 1
