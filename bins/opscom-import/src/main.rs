//! The importer binary: CLI, configuration and wiring.

fn main() {}
