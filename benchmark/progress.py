"""Progress lines that read well both in a terminal and in a log file."""

import math
import os
import sys
import time

from skorch.callbacks import Callback
from tqdm.auto import tqdm

from fer_sklearn._training import schedule_epochs

from .store import stop_if_interrupted

# The run's start, handed through the environment to the worker processes it
# starts (loky, a local Dask cluster), so that their lines count from the same
# moment: the monotonic clock is one per machine. A remote Dask worker counts
# from its own start.
_START_VARIABLE = "FER_BENCHMARK_START"


def _inherited_start():
    """The start handed down by the process that started this one, or None
    (none, or not a moment of this machine's monotonic clock so far)."""
    try:
        value = float(os.environ[_START_VARIABLE])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) and 0 <= value <= time.monotonic() else None


def start_clock():
    """Log lines count from now, here and in the worker processes started
    from here on. Each command calls it, so a run started from a process
    that has its own clock (a notebook, a test) counts from its own start."""
    global _START
    _START = time.monotonic()
    os.environ[_START_VARIABLE] = repr(_START)


_START = _inherited_start()
if _START is None:
    start_clock()


def log(message):
    """One line to stderr, prefixed with the minutes:seconds since the run started."""
    elapsed = max(0, int(time.monotonic() - _START))
    print(f"[{elapsed // 60:3d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)


class FitProgress(Callback):
    """Epoch progress of one fit.

    In a terminal a tqdm bar counts epochs; elsewhere (a log file, CI) a line
    at most every ``every`` seconds reports the epoch, loss and time left, and
    one line per fit its size, epochs, last training loss and time, so logs
    carry no carriage-return floods and a long fit is never silent.
    """

    def __init__(self, label, every=60.0):
        self.label = label
        self.every = every

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        stop_if_interrupted()  # skorch ended an earlier fit on a Ctrl-C: no next one
        self.start_ = time.perf_counter()
        self.n_ = len(X) if X is not None else 0
        self.last_ = self.start_
        self.bar_ = None
        if sys.stderr.isatty():
            self.bar_ = tqdm(total=net.max_epochs, desc=f"  {self.label} ({self.n_} images)",
                             unit="epoch", leave=False, file=sys.stderr)

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        planned = schedule_epochs(net)  # fewer than max_epochs where a time budget cut it
        if self.bar_ is not None:
            if self.bar_.total != planned:
                self.bar_.total = planned
            self.bar_.set_postfix(loss=f"{row['train_loss']:.3f}")
            self.bar_.update(1)
            return
        now = time.perf_counter()
        if now - self.last_ < self.every or len(net.history) >= planned:
            return
        self.last_ = now
        done = len(net.history)
        # A time budget's estimate knows that small (progressive) epochs come
        # first and cost less; otherwise, the epochs so far give the pace.
        budget = dict(getattr(net, "callbacks_", [])).get("time_budget")
        left = getattr(budget, "seconds_left_", None)
        if left is None:
            left = (now - self.start_) / done * (planned - done)
        held = f", held-out acc. {row['valid_acc']:.3f}" if "valid_acc" in row else ""
        log(f"  {self.label}: epoch {done}/{planned}, train loss "
            f"{row['train_loss']:.3f}{held}, about {left / 60:.0f} min left")

    def on_train_end(self, net, **kwargs):
        if self.bar_ is not None:
            self.bar_.close()
        # Raised here, outside skorch's guard, the Ctrl-C stops the run.
        stop_if_interrupted()
        finished = [row for row in net.history if "train_loss" in row]
        loss = finished[-1]["train_loss"] if finished else float("nan")
        validates = getattr(net, "_validates", lambda: net.train_split is not None)()
        held = " (a held-out part included)" if validates else ""
        log(f"  {self.label}: fit on {self.n_} images{held}, {len(finished)} epochs, "
            f"train loss {loss:.3f}, {time.perf_counter() - self.start_:.1f} s")

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("bar_", None)
        return state
