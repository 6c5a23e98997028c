//! CPU affinity for the server benches: the load generator on one core,
//! the server under test on another, so that neither steals the other's
//! time slices and every server gets the same single core whatever its
//! design (one event loop, a pool of threads, pre-forked workers).
//!
//! The bench pins its own thread before it starts the generator's threads
//! (they inherit it), and each server process is pinned between fork and
//! exec, so that everything it starts (threads, worker processes) stays on
//! the server's core. With fewer than two usable CPUs nothing is pinned.

use std::io;
use std::os::unix::process::CommandExt as _;
use std::process::Command;

/// The two CPUs of a pinned run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pinning {
    /// The load generator's CPU (the bench process).
    pub load: usize,
    /// The server's CPU.
    pub server: usize,
}

impl Pinning {
    /// The first two CPUs this process may run on, or None (with the
    /// count) when there are fewer than two.
    pub fn plan() -> Result<Pinning, usize> {
        let allowed = allowed_cpus();
        match allowed[..] {
            [load, server, ..] => Ok(Pinning { load, server }),
            _ => Err(allowed.len()),
        }
    }

    /// Pins the calling thread (and the threads it starts later) to the
    /// load CPU.
    pub fn pin_load(&self) -> io::Result<()> {
        set_affinity(self.load)
    }

    /// Makes `cmd`'s process run on the server CPU only.
    pub fn pin_server(&self, cmd: &mut Command) {
        let cpu = self.server;
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls sched_setaffinity(2), which is async-signal-safe, on a
        // set built on the stack.
        unsafe {
            cmd.pre_exec(move || set_affinity(cpu));
        }
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        format!("load generator on CPU {}, server on CPU {}", self.load, self.server)
    }
}

/// The CPUs the calling thread may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity
    // writes at most size_of::<cpu_set_t>() bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if got != 0 {
        return Vec::new();
    }
    // SAFETY: CPU_ISSET reads the set within its bounds (CPU_SETSIZE).
    (0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect()
}

/// Restricts the calling thread to `cpu`.
fn set_affinity(cpu: usize) -> io::Result<()> {
    // SAFETY: as in allowed_cpus; CPU_SET stays within the set when cpu
    // came from it (below CPU_SETSIZE).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "CPU number out of range"));
    }
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: a valid set of the size given.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_child_runs_on_the_server_cpu_only() {
        let pinning = match Pinning::plan() {
            Ok(pinning) => pinning,
            // One CPU: there is nothing to pin to (the bench says so).
            Err(cpus) => return assert!(cpus < 2, "{cpus} CPUs but no plan"),
        };
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "grep Cpus_allowed_list /proc/self/status"]);
        pinning.pin_server(&mut cmd);
        let out = cmd.output().expect("sh");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.split_whitespace().nth(1), Some(pinning.server.to_string().as_str()), "{text}");
    }
}
