"""Imported last by the validity fork server (:func:`yarnit.evaluation.validity._worker_context`).

The fork server has imported the serving runtime and the model libraries by now. Collecting their import
garbage once here and freezing what is left (``gc.freeze``: the objects move to a generation the collector
never scans) means each forked child's ``gc.collect`` before its memory baseline walks only its own objects,
not the whole imported heap again (about 0.1-0.3 s of CPU per check). Frozen objects are still freed when
nothing refers to them; they are just never examined for reference cycles. It also keeps the children from
touching (and copying) the parent's pages to update collector bookkeeping.
"""

from __future__ import annotations

import gc
import sys

#: The modules the fork server holds: a child that finds more when its request arrives imported them while it
#: prepared (multiprocessing re-runs the parent's ``__main__`` in it), and says which (``prepare_imports``).
PRELOADED = frozenset(sys.modules)

gc.collect()
gc.freeze()
