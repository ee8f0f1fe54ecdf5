"""An RQ worker class for bench/bench_sync_workers.py: the forking worker with gc.freeze() before each fork.

A forked work horse that runs Python's cyclic garbage collector touches every object it
inherited, so copy-on-write copies most of the parent's heap in every job; ``gc.freeze()``
moves the parent's objects out of the collector's reach first. Not used by the portal: the
benchmark measures what such a worker class would give (``--worker-class
bench._sync_worker.FrozenGcWorker``).
"""

from __future__ import annotations

import gc
from typing import Any

from rq.worker import Worker


class FrozenGcWorker(Worker):
    def fork_work_horse(self, job: Any, queue: Any) -> None:
        gc.collect()
        gc.freeze()
        super().fork_work_horse(job, queue)
