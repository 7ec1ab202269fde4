"""Everything that imports Ray: connecting, worker actors, archive runs (and later Ray Train).

A thin layer: the work itself (posecluster.infer, posecluster.train) runs and is tested without Ray.
"""
