"""``sparse-universe`` with every checkpoint write slowed down and announced on stdout.

Used by the kill test: it prints ``half`` when half of the checkpoint's bytes
are in the temporary file and ``whole`` when all are (before the fsync and
rename), pausing after each, so the test can SIGKILL it inside a write.
"""

import io
import sys
import time

import torch

from sparse_universe import cli

PAUSE = 0.15
_save = torch.save


def announced_save(obj, f, *args, **kwargs):
    buffer = io.BytesIO()
    _save(obj, buffer, *args, **kwargs)
    data = buffer.getvalue()
    for marker, chunk in (("half", data[: len(data) // 2]), ("whole", data[len(data) // 2:])):
        f.write(chunk)
        f.flush()
        print(marker, flush=True)
        time.sleep(PAUSE)


torch.save = announced_save
cli.main(sys.argv[1:])
