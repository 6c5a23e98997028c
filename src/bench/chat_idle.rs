//! The idle part of `trident bench chat`: memory per registered, idle IRC
//! connection on each server, as (the server's process tree with N
//! connections open − the same server with none) / N, RSS and PSS, so that
//! a server's fixed cost does not count and its worker processes do.

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::chat::{ChatBenchConfig, Part, Run, Servers, empty_run};
use super::irc_peer::Setup;
use super::measure::tree_memory;

/// Opens `n` connections and registers each (NICK, USER, up to the end of
/// the welcome); then calls `measure` while they are all open.
fn hold_idle(addr: SocketAddr, n: usize, measure: impl FnOnce() -> (u64, u64)) -> anyhow::Result<(usize, (u64, u64))> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            tasks.spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(addr).await?;
                stream.write_all(format!("NICK idle{i}\r\nUSER idle 0 * :idle\r\n").as_bytes()).await?;
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !(contains(&seen, b" 422 ") || contains(&seen, b" 376 ")) {
                    let got = stream.read(&mut buf).await?;
                    if got == 0 {
                        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"));
                    }
                    seen.extend_from_slice(&buf[..got]);
                }
                Ok::<_, std::io::Error>(stream)
            });
        }
        let mut streams = Vec::with_capacity(n);
        while let Some(joined) = tasks.join_next().await {
            if let Ok(Ok(stream)) = joined {
                streams.push(stream);
            }
        }
        // Let the server settle (threads finish starting, queues drain).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let memory = measure();
        Ok((streams.len(), memory))
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Memory per idle connection on every server, `--runs` times.
pub(super) fn idle_part(config: &ChatBenchConfig, servers: &Servers, runs: &mut Vec<Run>) -> anyhow::Result<()> {
    crate::sys::raise_nofile_limit();
    for round in 0..config.runs {
        for server in &servers.list {
            let name = server.label();
            let running = server.start(config.idle, Setup::Idle, servers.pin)?;
            let (pid, addr) = (running.served.process.id(), running.served.addr);
            thread::sleep(Duration::from_millis(300));
            let (rss_idle, pss_idle) = tree_memory(pid);
            let (open, (rss, pss)) = hold_idle(addr, config.idle, || tree_memory(pid))?;
            drop(running);
            let mut run = empty_run(Part::Idle, &name, round);
            run.connections = open;
            run.rss_idle_kib = rss_idle;
            run.pss_idle_kib = pss_idle;
            run.rss_loaded_kib = rss;
            run.pss_loaded_kib = pss;
            eprintln!(
                "idle  {name:<18} round {round}: {open} connections, RSS {rss_idle} -> {rss} KiB, PSS {pss_idle} -> {pss} KiB"
            );
            runs.push(run);
        }
    }
    Ok(())
}
