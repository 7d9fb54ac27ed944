"""Maintenance windows: planned change, announced and contained.

The modules here are the cluster-independent parts (pure decisions plus the maintenance
page server); the reconciler wires them to Kubernetes:

- ``schedule``: one-off and recurring schedules, occurrences and phases (DST-aware).
- ``notices``: which notices are due and when a window is refused for too little notice.
- ``messages``: who gets a notice and what it says.
- ``targets``: which products, backends and consumers a window affects.
- ``window``: one call per reconcile that combines the above into status and a wake-up time.
- ``page``: the maintenance page server and the Deployment/Service pieces that put it in front.
"""
