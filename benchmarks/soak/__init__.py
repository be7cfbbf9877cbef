"""Parts of the soak harness (`benchmarks/soak.py`): replayed targets, the daemon process, the
rollout driver, the fault schedule and the invariant checks, one module each."""
