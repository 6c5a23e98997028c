//! trident's integration tests: one binary, a module per area. Every
//! workload behaviour is run on every engine (see `util::for_each_engine`).

mod util;

mod engine_processes;
mod scan_cli;
