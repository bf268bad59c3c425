"""Benchmark stages: a registry the runner walks in order.

A stage is a function ``stage(ctx) -> dict`` registered with
:func:`register_stage`. What it returns is stored as a finished unit (so
``--resume`` skips it) and lands in ``results.json`` under the stage's name.
Stages talk to each other only through ``ctx`` (config, arrays, results of the
stages before, the unit store), never through globals. A stage that only
applies to some runs says so with ``applies(ctx) -> bool``.
"""

from dataclasses import dataclass
from typing import Callable, Optional

STAGES = {}


@dataclass(frozen=True)
class StageSpec:
    name: str
    run: Callable
    order: int
    applies: Optional[Callable] = None
    description: str = ""
    figures: Optional[Callable] = None


def register_stage(name, *, order, applies=None, description="", figures=None):
    """Decorator registering ``stage(ctx) -> dict`` under ``name``.

    Parameters
    ----------
    name : str
        Key of the stage's results in ``results.json``.
    order : int
        Position in the run (data 10, search 20, evaluate 30, fairness 40,
        explain 50). The report is written after the last stage.
    applies : callable or None
        ``applies(ctx) -> bool``; a stage that does not apply is recorded as
        skipped.
    description : str
        One line for the progress log.
    figures : callable or None
        ``figures(results, folder) -> {key: file name}``: draws the stage's
        PNGs from ``results`` (as in ``results.json``) into the run folder.
        The stage's report section is registered with
        :func:`fer_sklearn.reporting.register_section`.
    """

    def decorator(func):
        STAGES[name] = StageSpec(name, func, order, applies, description, figures)
        return func

    return decorator


def ordered_stages():
    """Registered stages in run order."""
    from . import data, evaluate, explain, fairness, search  # noqa: F401  (register)

    return sorted(STAGES.values(), key=lambda s: s.order)
