"""Progress lines that read well both in a terminal and in a log file."""

import sys
import time

from skorch.callbacks import Callback
from tqdm.auto import tqdm

_START = time.monotonic()


def log(message):
    """One line to stderr, prefixed with the minutes:seconds since start."""
    elapsed = int(time.monotonic() - _START)
    print(f"[{elapsed // 60:3d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)


class FitProgress(Callback):
    """Epoch progress of one fit.

    In a terminal a tqdm bar counts epochs; elsewhere (a log file, CI) one
    line per fit reports its size, epochs, last training loss and time, so
    logs carry no carriage-return floods.
    """

    def __init__(self, label):
        self.label = label

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.start_ = time.perf_counter()
        self.n_ = len(X) if X is not None else 0
        self.bar_ = None
        if sys.stderr.isatty():
            self.bar_ = tqdm(total=net.max_epochs, desc=f"  {self.label} ({self.n_} images)",
                             unit="epoch", leave=False, file=sys.stderr)

    def on_epoch_end(self, net, **kwargs):
        if self.bar_ is not None:
            self.bar_.set_postfix(loss=f"{net.history[-1, 'train_loss']:.3f}")
            self.bar_.update(1)

    def on_train_end(self, net, **kwargs):
        if self.bar_ is not None:
            self.bar_.close()
        loss = net.history[-1, "train_loss"] if len(net.history) else float("nan")
        log(f"  {self.label}: fit on {self.n_} images, {len(net.history)} epochs, "
            f"train loss {loss:.3f}, {time.perf_counter() - self.start_:.1f} s")

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("bar_", None)
        return state
