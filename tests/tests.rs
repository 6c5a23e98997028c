//! trident's integration tests: one binary, a module per area. Every
//! workload behaviour is run on every engine (see `engine_tests!` in util.rs).

mod util;

mod bench_chapter;
mod bench_chat;
mod bench_fetch;
mod bench_report;
mod chat_client;
mod chat_harness;
mod chat_hostile;
mod chat_irc_crate;
mod chat_irssi;
mod chat_load;
mod chat_log;
mod chat_server;
mod chat_tls;
mod chat_weechat;
mod cli_help;
mod cli_progress;
mod demo;
mod echo;
mod fetch;
mod fetch_digest;
mod fetch_disposition;
mod fetch_hostile;
mod fetch_input;
mod fetch_protocol;
mod fetch_resume;
mod fetch_security;
mod fetch_split;
mod fetch_trust;
mod fetch_util;
mod http_server;
mod lab;
mod netns;
mod raw_http;
mod scan_banners;
mod scan_cli;
mod scan_flags;
mod scan_guard;
mod scan_netns;
mod scan_nmap_formats;
mod scan_options;
mod scan_output;
mod scan_resolve;
mod scan_scale;
