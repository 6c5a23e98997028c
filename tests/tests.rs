//! trident's integration tests: one binary, a module per area. Every
//! workload behaviour is run on every engine (see `util::for_each_engine`).

mod util;

mod scan_cli;
