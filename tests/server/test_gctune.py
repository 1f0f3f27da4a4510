"""tune_for_serving: the objects the server holds once up are frozen out of collections, and the
young generation is collected less often."""

from __future__ import annotations

import gc

from freight.server.gctune import THRESHOLDS, tune_for_serving


def test_tuning_freezes_what_is_held_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune_for_serving()
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
