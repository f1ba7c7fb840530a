"""Keep the objects a serving process lives on out of the garbage collector's full passes.

After start-up the heap holds hundreds of thousands of objects that last as long as the
process: the policy's name indexes, the corpus, parsed index files. CPython's full collection
walks every one of them, and the default thresholds start one every few seconds under load:
55-90 ms pauses that every waiting connection sees (measured at 1,000 warm connections;
docs/benchmarks.md). `settle()` freezes what exists (`gc.freeze`), so later collections walk
only what came since: about 2 ms. Frozen objects are still freed by reference counting when
dropped; `settle()` again after a policy reload also lets one full collection find any
reference cycle among the objects the old policy leaves behind.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect once, then freeze everything that survived (call when start-up or a reload
    is done, not per request)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
