//! Small OS facts and knobs (Linux): open-file limit, process-tree memory,
//! local time, whether stdout's reader is gone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Raises the soft open-file limit to the hard one and returns the new soft
/// limit. Scans need one descriptor per probe in flight.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Whether stdout is a pipe or socket nobody reads any more (`| head -1`
/// has exited): its write end then polls as an error.
pub fn stdout_closed() -> bool {
    let mut fd = libc::pollfd { fd: libc::STDOUT_FILENO, events: libc::POLLOUT, revents: 0 };
    // SAFETY: poll reads and writes only the one pollfd we pass; timeout 0.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready == 1 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// `t` broken down in local time (TZ, /etc/localtime), through libc; `None`
/// if it cannot be.
pub fn local_time(t: SystemTime) -> Option<libc::tm> {
    let secs = libc::time_t::try_from(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())).ok()?;
    // SAFETY: an all-zero `tm` is a valid value (integers and a null
    // `tm_zone` pointer); localtime_r writes only through the two pointers,
    // valid for the call, and reads the time zone, which nothing in this
    // program changes.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    ok.then_some(tm)
}

/// Marks the calling thread as background work (`SCHED_BATCH`): the same
/// share of the CPU as any other thread, but its wake-ups never preempt a
/// running thread. For helper threads fed by a hot thread (fetch's
/// writer, committer, namer and report flusher): woken once per hand-off,
/// a normal thread takes the core from the thread that just fed it.
/// Whether it worked (it needs no privilege; a kernel without the policy
/// leaves the thread as it was).
pub fn background_thread() -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; the param outlives the call.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) == 0 }
}

/// What `path` is stored on, for benchmark reports: the file system type
/// (ext4 also says whether it has a journal), its source and mount point,
/// and for a loop device its backing file and whether it does direct I/O,
/// e.g. `ext4 (no journal) on /dev/loop0 (loop: /mnt/b.img, direct I/O)
/// at /mnt/b`. Flush costs differ between these (a loop device's flush
/// is an `fsync` of its backing file), and only tools that sync pay them.
/// `None` if it cannot be told.
pub fn storage(path: &Path) -> Option<String> {
    let path = fs::canonicalize(path).ok()?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let (point, fstype, source) = mountinfo
        .lines()
        .filter_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            let point = unescape_mount_field(mount.split(' ').nth(4)?);
            let mut fs = fs.split(' ');
            Some((PathBuf::from(point), fs.next()?.to_string(), unescape_mount_field(fs.next()?)))
        })
        .filter(|(point, _, _)| path.starts_with(point))
        .max_by_key(|(point, _, _)| point.components().count())?;
    let device = source.strip_prefix("/dev/").filter(|d| !d.contains('/'));
    let mut kind = fstype.clone();
    if fstype == "ext4"
        && let Some(task) = device.and_then(|d| fs::read_to_string(format!("/sys/fs/ext4/{d}/journal_task")).ok())
    {
        kind.push_str(if task.trim() == "<none>" { " (no journal)" } else { " (journal)" });
    }
    let mut on = source.clone();
    if let Some(loop_dev) = device.filter(|d| d.starts_with("loop"))
        && let Ok(backing) = fs::read_to_string(format!("/sys/block/{loop_dev}/loop/backing_file"))
    {
        let dio = fs::read_to_string(format!("/sys/block/{loop_dev}/loop/dio")).is_ok_and(|v| v.trim() == "1");
        on = format!("{source} (loop: {}{})", backing.trim(), if dio { ", direct I/O" } else { "" });
    }
    Some(format!("{kind} on {on} at {}", point.display()))
}

/// A /proc/self/mountinfo field with its octal escapes (`\040` for a
/// space) decoded.
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Process IDs of `pid`'s direct children (from /proc; empty if gone).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = fs::read_to_string(task.path().join("children")) {
            out.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

/// `pid` and all its descendants.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let kids = children(tree[i]);
        tree.extend(kids);
        i += 1;
    }
    tree
}

/// Resident set size of one process in KiB (0 if it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    let Ok(statm) = fs::read_to_string(format!("/proc/{pid}/statm")) else { return 0 };
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    pages * page / 1024
}

/// Peak resident set size of one process in KiB (`VmHWM`: since its last
/// exec, so a freshly spawned child does not inherit its parent's peak), 0
/// if it is gone.
pub fn hwm_kib(pid: u32) -> u64 {
    kib_field(&format!("/proc/{pid}/status"), "VmHWM:")
}

/// Proportional set size of one process in KiB: its private memory plus its
/// share of pages it shares with others (0 if it is gone). Summing PSS over
/// a process tree counts shared pages (the binary's text) once.
pub fn pss_kib(pid: u32) -> u64 {
    kib_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}

/// The `NAME:   123 kB` line of a /proc file, in KiB (0 if absent or gone).
fn kib_field(path: &str, name: &str) -> u64 {
    let Ok(text) = fs::read_to_string(path) else { return 0 };
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// For a worker process, between fork and exec (a `pre_exec` closure) or
/// first thing after exec, while it has one thread: die with the parent
/// (`PR_SET_PDEATHSIG`, checked against a parent `parent` that died
/// before the prctl took effect), and ignore the terminal's
/// Ctrl-C, which reaches the whole foreground group: the parent decides
/// when its workers stop.
///
/// # Safety
/// Only between fork and exec, or in a process that has one thread; it
/// calls async-signal-safe functions only (prctl, getppid, signal, _exit).
pub unsafe fn become_worker_of(parent: u32) -> io::Result<()> {
    // SAFETY: async-signal-safe calls, as the caller guarantees the context.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::getppid() as u32 != parent {
            libc::_exit(1);
        }
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mount_field(r"/mnt/with\040space\011tab"), "/mnt/with space\ttab");
        assert_eq!(unescape_mount_field(r"/plain\0x"), r"/plain\0x", "not an escape: kept");
    }

    #[test]
    fn the_storage_of_a_directory_names_its_mount() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = storage(dir.path()).expect("a mounted file system");
        let root = storage(Path::new("/")).expect("/ is mounted");
        assert!(root.ends_with(" at /"), "{root}");
        assert!(text.contains(" on ") && text.contains(" at /"), "{text}");
        assert_eq!(storage(&dir.path().join("missing")), None);
    }
}
