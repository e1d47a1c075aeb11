//! The `opscom-sandbox` binary: runs the sandbox API on a port with latency and fault options.

fn main() {}
