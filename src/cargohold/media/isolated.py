"""Image work in a process of its own, for the images whose decoder is Python code.

Pillow decodes an RLE BMP (``BmpRleDecoder``), a plain (ASCII) PNM and a PNM of an odd depth
(``PpmPlainDecoder``, ``PpmDecoder``) in Python: ``ImageFile.PyDecoder`` subclasses, holding the GIL for
most of their work (``Header.python_decoder`` says which files). Measured on the issue's RLE8 BMP
(15000 x 13000, a 64 px preview): 1.5 s a decode, 0.7 s of it holding the GIL (py-spy ``--gil``), in
stretches over 100 ms (the decoded bytearray grown by ``realloc`` and copied by ``bytes()``: single C
calls that never let the GIL go). Two in threads stalled an event loop beside them for up to 454 ms, and
four made the server's ``/healthz`` take 1.1 s. No thread arrangement helps, and libvips, which lets the
GIL go, has no BMP or PNM loader in the pyvips-binary build; in another process the server's GIL is free.

- What runs there: the whole job (``preview.make_preview``, ``convert.convert_image``), the function a
  thread runs for every other image, so the file made is the same. Only the job's arguments go there
  (paths, the spec, the header: pickled, a few hundred bytes) and its outcome comes back; no pixels.
- How: ``python -m cargohold.media.isolated``, a fresh interpreter per job (about 0.1 s to start, Pillow
  and libvips imported), on the server's import path. ``subprocess`` forks only to exec at once, which is
  safe in a process with threads and an event loop. multiprocessing's ``spawn`` and ``forkserver`` would
  also run the server's main module over again in the child or the fork server (started as the
  ``cargohold`` script, that is the whole CLI imported, 0.9 s: it works only as long as every way of
  starting the server keeps its main module harmless to import), and a ``ProcessPoolExecutor`` whose
  worker dies fails every job in it. A process per job takes only its own job with it when it dies, and
  gives its memory back to the system whole, the allocator's slack included.
- Memory: the caller runs ``run`` in an image thread after the job's cost was admitted by
  IMAGE_MEMORY_BUDGET (services/serving/budget.py), and ``run`` returns once the child has exited: the
  child's working set is counted in the budget as if it ran in the server, and at most one child runs per
  image thread. Beyond the estimate each child holds its interpreter and libraries (about 27 MB).
- Outcome: the child answers in JSON, not pickle: it has just parsed an untrusted file, and the server
  unpickles nothing from it. ``Unprocessable`` comes back as itself (with its libvips cause, which the
  caller reads to tell a full disk from a bad image), an ``OSError`` as itself; anything else, and a child
  that ends without answering (killed, crashed), is ``ImageWorkFailed`` naming how it ended. The parent
  waits on the child's stdout, which the kernel closes when the child dies: an answer or an error, never
  a hang.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pyvips  # type: ignore[import-untyped]

from ..errors import ImageWorkFailed, Unprocessable


def run(func: Callable[..., None], *args: object, **kwargs: object) -> None:
    """``func(*args, **kwargs)`` in a process of its own; blocks until that process has ended (call it
    in an image thread). ``func`` must be a module-level function of ``cargohold.media`` (or a partial of
    one) and the arguments plain data: they are pickled. Raises what ``func`` raised (``Unprocessable``,
    ``OSError``), or ImageWorkFailed."""
    job = pickle.dumps((func, args, kwargs))
    # The server's own import path, in its order: the child imports cargohold (and everything) from where
    # the server did, however the server was started.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        child = subprocess.Popen([sys.executable, "-m", "cargohold.media.isolated"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, env=env)
    except OSError as exc:
        raise ImageWorkFailed(f"no process could be started to make this image: {exc}") from exc
    answer, _ = child.communicate(job)  # stderr stays the server's: the child's tracebacks land in its log
    try:
        outcome: dict[str, Any] = json.loads(answer)
    except ValueError:
        outcome = {}
    if child.returncode != 0 or "raised" not in outcome:
        raise ImageWorkFailed(f"the process making this image ended without finishing it "
                              f"({_how_it_ended(child.returncode)}); nothing was made")
    raised = outcome["raised"]
    if raised is None:
        return
    message = str(outcome.get("message", ""))
    if raised == "Unprocessable":
        cause = outcome.get("cause")
        error = Unprocessable(message)
        if cause:  # libvips' error, as write_image (services/serving/fallback.py) reads it
            raise error from pyvips.Error(str(cause[0]), str(cause[1]) or str(cause[0]))
        raise error
    if raised == "OSError":
        raise OSError(int(outcome.get("errno") or 0), message)
    raise ImageWorkFailed(f"making this image failed: {message}")


def _how_it_ended(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}" if returncode else "no answer"


def _answer(exc: BaseException | None) -> dict[str, Any]:
    if exc is None:
        return {"raised": None}
    if isinstance(exc, Unprocessable):
        cause = exc.__cause__
        vips = [str(cause.message), str(cause.detail or "")] if isinstance(cause, pyvips.Error) else None
        return {"raised": "Unprocessable", "message": exc.message, "cause": vips}
    if isinstance(exc, OSError):
        return {"raised": "OSError", "errno": exc.errno, "message": exc.strerror or str(exc)}
    return {"raised": type(exc).__name__, "message": f"{type(exc).__name__}: {exc}"}


def _main() -> None:
    # The answer goes to the real stdout; anything a library prints goes to stderr instead.
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    func, args, kwargs = pickle.load(sys.stdin.buffer)
    try:
        func(*args, **kwargs)
        outcome = _answer(None)
    except Exception as exc:  # every failure is answered; the server decides what it is
        outcome = _answer(exc)
    answer.write(json.dumps(outcome))
    answer.close()


if __name__ == "__main__":
    _main()
