//! An OPSCOM Push API look-alike (axum) for the demo, tests and benchmarks.
