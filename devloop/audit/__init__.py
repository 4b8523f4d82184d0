"""Judge sampling: sample locally served calls, replay them on the production tier, judge."""
