"""How entry points end: one ``error:`` line and exit 2 for bad input, ``interrupted:`` and 130 / 143
after Ctrl-C or SIGTERM (with temporary files removed), 0 otherwise."""
import contextlib
import signal
import sys
import threading

from src.errors import UserError


class Terminated(KeyboardInterrupt):
    """SIGTERM as an exception: it unwinds like Ctrl-C, so ``atomic_path`` removes its temp file."""


@contextlib.contextmanager
def handle_termination():
    """Within the block, SIGTERM raises ``Terminated`` (once; later ones are ignored so cleanup can
    finish). The previous handler is restored on exit. Outside the main thread this does nothing.

    This also covers Ctrl-C: once MindSpore has run a kernel, its own SIGINT handler sends the process
    SIGTERM (checked with 2.10), which by default would kill it before any temp file is removed.
    """
    def raise_terminated(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()
    installed = threading.current_thread() is threading.main_thread()  # else signal.signal fails
    previous = signal.signal(signal.SIGTERM, raise_terminated) if installed else None
    try:
        yield
    finally:
        if installed:  # None: the previous handler was not set from Python, i.e. the default
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def print_last_line(text):
    """Print the run's closing message on stderr on a line of its own: when an exception ends a loop,
    its progress bar is still drawn (without a newline); ``tqdm.write`` clears the bars around the write."""
    from tqdm import tqdm
    tqdm.write(text, file=sys.stderr)


def interrupted_exit_code(exc):
    """The shell convention 128 + signal number: 143 after SIGTERM, 130 after a KeyboardInterrupt
    (Ctrl-C before MindSpore's first kernel; afterwards MindSpore turns Ctrl-C into SIGTERM)."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


def run_cli(body, interrupted_note):
    """Run an entry point's ``body()``: a UserError becomes one ``error:`` line and exit code 2, an
    interruption one ``interrupted:`` line and 130 / 143; otherwise 0."""
    try:
        with handle_termination():
            body()
    except UserError as e:
        print_last_line(f'error: {e}')
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM as Terminated
        print_last_line(f'interrupted: {interrupted_note}')
        return interrupted_exit_code(e)
    return 0
