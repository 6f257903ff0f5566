"""Run one command; print its wall time and its own CPU time, peak RSS and exit code.

::

    python -I -S bench/spawn.py TIMEOUT ARGV...

bench/run.py measures every process through this launcher. On Linux a child's
``ru_maxrss`` starts from the high-water mark of the memory it was forked from, so a child
of a big process reports at least that process's peak. This launcher is smaller than any
Python process it measures (``-I -S``: no ``site``, built-in modules only, about 9 MiB
against ``python -c pass``'s 13), so the figure it reads with ``os.wait4`` is the child's
own. The clock runs from just before the fork to the return of ``wait4``. The child gets
a session of its own (killed with its process group after TIMEOUT seconds), stdout on
``/dev/null`` and this launcher's stderr. One line on stdout::

    SECONDS CPU_SECONDS MAX_RSS_KIB EXIT_CODE KILLED
"""

import os
import signal
import sys
import time


def main() -> int:
    timeout, argv = float(sys.argv[1]), sys.argv[2:]
    killed = []

    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: nothing but the exec
        try:
            os.setsid()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)

    def kill(signum: int, frame: object) -> None:
        killed.append(True)
        try:  # noqa: SIM105 (contextlib: one more import for a process kept small)
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended meanwhile
            pass

    signal.signal(signal.SIGALRM, kill)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    signal.setitimer(signal.ITIMER_REAL, 0)
    cpu = usage.ru_utime + usage.ru_stime
    code = os.waitstatus_to_exitcode(status)
    print(f"{seconds!r} {cpu!r} {usage.ru_maxrss} {code} {int(bool(killed))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
