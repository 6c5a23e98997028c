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

/// How long all `n` connections together may take to be welcomed. A server
/// that never ends its welcome (no 376 or 422) fails the bench with an
/// error after this instead of hanging it.
const WELCOME_DEADLINE: Duration = Duration::from_secs(300);

/// Opens `n` connections and registers each (NICK, USER, up to the end of
/// the welcome: 376 end of MOTD or 422 no MOTD); then calls `measure` while
/// they are all open. Fails if they are not all welcomed or refused within
/// `deadline`.
fn hold_idle(
    addr: SocketAddr,
    n: usize,
    deadline: Duration,
    measure: impl FnOnce() -> (u64, u64),
) -> anyhow::Result<(usize, (u64, u64))> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            tasks.spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(addr).await?;
                stream.write_all(format!("NICK idle{i}\r\nUSER idle 0 * :idle\r\n").as_bytes()).await?;
                let mut scan = WelcomeScan::default();
                let mut buf = [0u8; 4096];
                loop {
                    let got = stream.read(&mut buf).await?;
                    if got == 0 {
                        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"));
                    }
                    if scan.feed(&buf[..got]) {
                        return Ok::<_, std::io::Error>(stream);
                    }
                }
            });
        }
        let mut streams = Vec::with_capacity(n);
        let joined_all = tokio::time::timeout(deadline, async {
            while let Some(joined) = tasks.join_next().await {
                if let Ok(Ok(stream)) = joined {
                    streams.push(stream);
                }
            }
        })
        .await;
        if joined_all.is_err() {
            anyhow::bail!(
                "idle part: {addr} welcomed {} of {n} connections within {deadline:?}; \
                 the rest never got the end of the welcome (376 or 422)",
                streams.len()
            );
        }
        // Let the server settle (threads finish starting, queues drain).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let memory = measure();
        Ok((streams.len(), memory))
    })
}

/// Looks for the end of an IRC welcome (` 376 ` or ` 422 `) in a stream of
/// chunks, keeping only the last few bytes between chunks so that a server
/// that talks without end does not grow the client's memory.
#[derive(Default)]
struct WelcomeScan {
    tail: Vec<u8>,
}

impl WelcomeScan {
    const NEEDLE_LEN: usize = 5;

    /// Takes the next chunk; true once the end of the welcome has been seen.
    fn feed(&mut self, chunk: &[u8]) -> bool {
        self.tail.extend_from_slice(chunk);
        let found = self.tail.windows(Self::NEEDLE_LEN).any(|w| w == b" 376 " || w == b" 422 ");
        let keep = self.tail.len().min(Self::NEEDLE_LEN - 1);
        self.tail.drain(..self.tail.len() - keep);
        found
    }
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
            let (open, (rss, pss)) = hold_idle(addr, config.idle, WELCOME_DEADLINE, || tree_memory(pid))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welcome_end_is_found_across_chunks_and_only_a_tail_is_kept() {
        let mut scan = WelcomeScan::default();
        assert!(!scan.feed(b":srv 001 a :hi\r\n:srv 37"));
        assert!(scan.tail.len() < WelcomeScan::NEEDLE_LEN);
        assert!(scan.feed(b"6 a :End\r\n"));
        let mut scan = WelcomeScan::default();
        for _ in 0..1000 {
            assert!(!scan.feed(&[b'x'; 4096]));
        }
        assert!(scan.tail.len() < WelcomeScan::NEEDLE_LEN);
        assert!(WelcomeScan::default().feed(b":srv 422 a :MOTD File is missing\r\n"));
    }

    /// A real listener that accepts and never answers: the bench must give
    /// up with an error naming the missing numerics, not wait for ever.
    #[test]
    fn a_server_that_never_ends_its_welcome_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let held = thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut read = std::io::BufReader::new(conn);
            let mut line = String::new();
            // Holds the connection open, reading until the client goes.
            while std::io::BufRead::read_line(&mut read, &mut line).is_ok_and(|got| got > 0) {
                line.clear();
            }
        });
        let err = hold_idle(addr, 1, Duration::from_millis(500), || (0, 0)).unwrap_err().to_string();
        assert!(err.contains("0 of 1") && err.contains("376 or 422"), "{err}");
        held.join().unwrap();
    }
}
