"""Bench results as the daemon sees them: the `bench_run` table and its publisher.

`charter-tui bench` (the `executor` package, above the daemon) runs a comparison in its own process and
writes a `BenchRun` row; the daemon only stores and publishes those rows (`publisher.BenchPublisher`
carries new ones onto the bus, and so to the TUI and over MQTT).
"""
