//! Runs a command and measures it: wall time, user+system CPU of the
//! command and its waited-for children (`wait4` rusage), and peak memory;
//! and, for a server measured while it serves, a running process tree's
//! CPU time and memory ([`tree_cpu`], [`tree_memory`]).
//!
//! Peak memory is sampled over the whole process tree every 10 ms, both as
//! a sum of RSS (the command's own process counted at its `VmHWM`, its
//! peak since exec, so a peak between two samples is not missed) and as a
//! sum of PSS. The kernel's `ru_maxrss` is only a fallback for a command
//! that ended before the first sample: a child started with vfork (as
//! `posix_spawn` does) begins with its parent's peak there, which would
//! put a floor of the bench's own memory under every figure. For one
//! process the two sums are close; for the processes engine the RSS sum
//! counts the shared binary once per worker and the PSS sum is what the
//! machine really pays.

use std::io::{self, Read};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::sys;

/// How often the process tree's memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// What one run cost.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// Start to exit.
    pub wall: Duration,
    /// User CPU time, children included.
    pub user: Duration,
    /// System CPU time, children included.
    pub sys: Duration,
    /// Peak resident memory of the process tree (sum of RSS), KiB.
    pub peak_rss_kib: u64,
    /// Peak proportional memory of the process tree (sum of PSS), KiB:
    /// pages shared between processes counted once.
    pub peak_pss_kib: u64,
    /// Exit code, or `None` if killed by a signal.
    pub exit_code: Option<i32>,
    /// Whether it was killed for running past its time limit.
    pub timed_out: bool,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
}

impl Measurement {
    /// User plus system CPU time.
    pub fn cpu(&self) -> Duration {
        self.user + self.sys
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Runs `cmd` to completion, capturing its output, and measures it.
pub fn measure(cmd: &mut Command) -> io::Result<Measurement> {
    measure_with_limit(cmd, None)
}

/// Like [`measure`], but kills the command and its descendants (SIGKILL)
/// once `limit` has passed; the measurement then has `timed_out` set.
pub fn measure_with_limit(cmd: &mut Command, limit: Option<Duration>) -> io::Result<Measurement> {
    let started = Instant::now();
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let pid = child.id();
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);

    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let peak_pss = Arc::new(AtomicU64::new(0));
    let watchdog = limit.map(|limit| {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let deadline = Instant::now() + limit;
            while !done.load(Ordering::Relaxed) {
                if Instant::now() >= deadline {
                    // The whole tree: a child left running (a Python
                    // pool's worker) would hold the output pipes open,
                    // and the bench would wait for it. The tree is read
                    // before anyone dies, while every child still has
                    // its parent.
                    for p in sys::process_tree(pid) {
                        // SAFETY: kill(2) on the command (not reaped yet:
                        // wait4 below) and on its descendants.
                        unsafe { libc::kill(p as libc::pid_t, libc::SIGKILL) };
                    }
                    return true;
                }
                thread::sleep(Duration::from_millis(20));
            }
            false
        })
    });
    let sampler = {
        let (done, peak, peak_pss) = (Arc::clone(&done), Arc::clone(&peak), Arc::clone(&peak_pss));
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let tree = sys::process_tree(pid);
                let rss: u64 = tree.iter().map(|&p| if p == pid { sys::hwm_kib(p) } else { sys::rss_kib(p) }).sum();
                let pss: u64 = tree.iter().map(|&p| sys::pss_kib(p)).sum();
                peak.fetch_max(rss, Ordering::Relaxed);
                peak_pss.fetch_max(pss, Ordering::Relaxed);
                thread::sleep(SAMPLE_EVERY);
            }
        })
    };

    let mut status = 0;
    // SAFETY: rusage is plain data, filled in by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = loop {
        // SAFETY: we own the child and wait for it exactly once; std's
        // Child is then dropped without waiting.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r >= 0 {
            break Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            break Err(e);
        }
    };
    let wall = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let timed_out = watchdog.is_some_and(|w| w.join().unwrap_or(false));
    drop(child);
    waited?;

    let stdout = out.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
    let stderr = err.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
    let exit_code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let maxrss = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    Ok(Measurement {
        wall,
        user: timeval(usage.ru_utime),
        sys: timeval(usage.ru_stime),
        peak_rss_kib: match peak.load(Ordering::Relaxed) {
            0 => maxrss,
            sampled => sampled,
        },
        peak_pss_kib: peak_pss.load(Ordering::Relaxed),
        exit_code,
        timed_out,
        stdout,
        stderr,
    })
}

/// CPU time (user + system) of a process tree, in seconds.
pub fn tree_cpu(pid: u32) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    sys::process_tree(pid)
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .map(|stat| {
            let after = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
            let fields: Vec<&str> = after.split(' ').collect();
            // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
            let t = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            (t(11) + t(12)) / tick
        })
        .sum()
}

/// Resident memory of a process tree now, summed: (RSS, PSS) in KiB.
pub fn tree_memory(pid: u32) -> (u64, u64) {
    let tree = sys::process_tree(pid);
    (tree.iter().map(|&p| sys::rss_kib(p)).sum(), tree.iter().map(|&p| sys::pss_kib(p)).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_cpu_memory_and_output() {
        // A shell that burns a little CPU and prints.
        let m = measure(
            Command::new("sh").args(["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo hi; exit 3"]),
        )
        .unwrap();
        assert_eq!(m.stdout, b"hi\n");
        assert_eq!(m.exit_code, Some(3));
        assert!(m.cpu() > Duration::ZERO);
        assert!(m.peak_rss_kib > 100, "{}", m.peak_rss_kib);
        assert!(!m.timed_out);
    }

    #[test]
    fn a_time_limit_kills_the_whole_tree() {
        // A child that outlives its parent keeps stdout open: unless it is
        // killed too, reading the output waits the child's 30 s.
        let started = Instant::now();
        let m =
            measure_with_limit(Command::new("sh").args(["-c", "sleep 30 & wait"]), Some(Duration::from_millis(300)))
                .unwrap();
        assert!(m.timed_out);
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    }

    #[test]
    fn a_time_limit_kills() {
        let m = measure_with_limit(Command::new("sleep").arg("30"), Some(Duration::from_millis(100))).unwrap();
        assert!(m.timed_out);
        assert_eq!(m.exit_code, None, "killed by a signal");
    }
}
