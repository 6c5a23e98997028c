//! Scans of a host whose every answer the test controls: a network
//! namespace behind a veth pair, with listeners and iptables rules inside
//! (see `netns.rs`). Checks nmap's state/reason table on every engine,
//! the processes engine's survival of killed workers and parents, and
//! Ctrl-C on every engine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::engine_tests;
use crate::netns::Netns;
use crate::util::{self, PortLine};

/// One port of the firewall table: how the namespace treats it, and what
/// the scan must say about it.
struct Row {
    port: u16,
    listen: bool,
    /// iptables target for the port (after `-j`), if any.
    rule: Option<&'static str>,
    state: &'static str,
    reason: &'static str,
}

const fn row(port: u16, listen: bool, rule: Option<&'static str>, state: &'static str, reason: &'static str) -> Row {
    Row { port, listen, rule, state, reason }
}

/// Every way a port can answer a connect() probe, two ports each where it
/// is cheap, plus firewall rules in front of listeners (the rule wins).
const TABLE: [Row; 17] = [
    row(101, true, None, "open", "syn-ack"),
    row(102, true, None, "open", "syn-ack"),
    row(103, false, None, "closed", "conn-refused"),
    row(104, false, None, "closed", "conn-refused"),
    row(105, false, Some("DROP"), "filtered", "no-response"),
    row(106, true, Some("DROP"), "filtered", "no-response"),
    row(107, false, Some("REJECT --reject-with tcp-reset"), "closed", "conn-refused"),
    row(108, true, Some("REJECT --reject-with tcp-reset"), "closed", "conn-refused"),
    row(109, false, Some("REJECT --reject-with icmp-port-unreachable"), "closed", "conn-refused"),
    row(110, true, Some("REJECT --reject-with icmp-port-unreachable"), "closed", "conn-refused"),
    row(111, false, Some("REJECT --reject-with icmp-admin-prohibited"), "filtered", "host-unreach"),
    row(112, true, Some("REJECT --reject-with icmp-admin-prohibited"), "filtered", "host-unreach"),
    row(113, false, Some("REJECT --reject-with icmp-host-unreachable"), "filtered", "host-unreach"),
    row(114, true, Some("REJECT --reject-with icmp-host-unreachable"), "filtered", "host-unreach"),
    row(115, false, Some("REJECT --reject-with icmp-host-prohibited"), "filtered", "host-unreach"),
    row(116, false, Some("REJECT --reject-with icmp-net-unreachable"), "filtered", "net-unreach"),
    row(117, false, Some("REJECT --reject-with icmp-net-prohibited"), "filtered", "net-unreach"),
];
const TABLE_PORTS: &str = "101-117";
/// Short enough for a fast suite, long enough for a veth round trip.
const FAST: [&str; 4] = ["--timeout", "300ms", "--retries", "1"];

/// A namespace set up as [`TABLE`] says.
fn firewalled_namespace() -> Netns {
    let ns = Netns::new();
    let listen: Vec<u16> = TABLE.iter().filter(|r| r.listen).map(|r| r.port).collect();
    ns.listen(&listen);
    for r in &TABLE {
        if let Some(rule) = r.rule {
            let port = r.port.to_string();
            let mut args = vec!["-A", "INPUT", "-p", "tcp", "--dport", &port, "-j"];
            args.extend(rule.split_whitespace());
            ns.iptables(&args);
        }
    }
    ns
}

/// Opens `ports` and DROPs `dropped` (an iptables port or `first:last` range).
fn listeners_then_drops(open: &[u16], dropped: &str) -> Netns {
    let ns = Netns::new();
    ns.listen(open);
    ns.iptables(&["-A", "INPUT", "-p", "tcp", "--dport", dropped, "-j", "DROP"]);
    ns
}

fn describe(o: &std::process::Output) -> String {
    format!("status {}\n--- stdout\n{}--- stderr\n{}", o.status, util::stdout(o), util::stderr(o))
}

/// `lines` by port, asserting that no port appears twice.
fn by_port<'a>(lines: &'a [PortLine], context: &str) -> BTreeMap<u16, &'a PortLine> {
    let mut map = BTreeMap::new();
    for l in lines {
        assert!(map.insert(l.port, l).is_none(), "port {} reported twice\n{context}", l.port);
    }
    map
}

fn parse_line(line: &str) -> PortLine {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad jsonl line {line:?}: {e}"))
}

engine_tests! {
    fn firewall_table_jsonl(engine) {
        let ns = firewalled_namespace();
        let ip = ns.ip().to_string();
        let mut args = vec!["scan", &ip, "-p", TABLE_PORTS, "-e", engine, "-c", "16", "-f", "jsonl"];
        args.extend(FAST);
        let out = util::run(&args);
        let context = describe(&out);
        assert_eq!(out.status.code(), Some(0), "{context}");
        let lines = util::jsonl(&out);
        let got = by_port(&lines, &context);
        let want: BTreeSet<u16> = TABLE.iter().map(|r| r.port).collect();
        assert_eq!(got.keys().copied().collect::<BTreeSet<_>>(), want, "{context}");
        for r in &TABLE {
            let l = got[&r.port];
            let what = format!("port {} (listener: {}, rule: {:?})\n{context}", r.port, r.listen, r.rule);
            assert_eq!((l.state.as_str(), l.reason.as_str()), (r.state, r.reason), "{what}");
            assert_eq!((l.ip.as_str(), l.proto.as_str(), l.host.as_deref()), (ip.as_str(), "tcp", None), "{what}");
            if r.reason == "no-response" {
                assert_eq!(l.rtt_us, None, "silence has no round-trip time: {what}");
                assert_eq!(l.tries, 2, "--retries 1 means two tries: {what}");
            } else {
                assert!(l.rtt_us.is_some(), "an answer has a round-trip time: {what}");
                assert!(l.tries >= 1, "{what}");
            }
        }
    }

    fn firewall_table_text(engine) {
        let ns = firewalled_namespace();
        let ip = ns.ip().to_string();
        let mut args = vec!["scan", &ip, "-p", TABLE_PORTS, "-e", engine, "-c", "16", "-f", "text"];
        args.extend(FAST);
        let out = util::run(&args);
        let context = describe(&out);
        assert_eq!(out.status.code(), Some(0), "{context}");
        let text = util::stdout(&out);
        let lines: Vec<&str> = text.lines().collect();

        assert_eq!(lines.first().copied(), Some(format!("Scan report for {ip}").as_str()), "{context}");
        let listed: Vec<Vec<&str>> = lines
            .iter()
            .filter(|l| l.contains("/tcp"))
            .map(|l| {
                // PORT STATE SERVICE REASON RTT: keep port, state, reason.
                let f: Vec<&str> = l.split_whitespace().collect();
                vec![f[0], f[1], f[3]]
            })
            .collect();
        let want_listed: Vec<Vec<String>> = TABLE
            .iter()
            .filter(|r| r.state == "open")
            .map(|r| vec![format!("{}/tcp", r.port), r.state.into(), r.reason.into()])
            .collect();
        assert_eq!(listed, want_listed, "only open ports are listed, in port order\n{context}");

        // Ordered by state (closed before filtered, as the report orders
        // them), then reason.
        let mut hidden: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for r in TABLE.iter().filter(|r| r.state != "open") {
            *hidden.entry((r.state, r.reason)).or_default() += 1;
        }
        let parts: Vec<String> = hidden.iter().map(|((state, reason), n)| format!("{n} {state} ({reason})")).collect();
        let not_shown = format!("Not shown: {}", parts.join(", "));
        assert!(lines.contains(&not_shown.as_str()), "want {not_shown:?}\n{context}");

        let summary = lines.iter().find(|l| l.starts_with("Scanned ")).unwrap_or_else(|| panic!("no summary\n{context}"));
        let n = |state: &str| TABLE.iter().filter(|r| r.state == state).count();
        let head = format!("Scanned 1 host x {} ports in ", TABLE.len());
        let tail = format!(
            "s with {engine} (concurrency 16): {} open, {} closed, {} filtered",
            n("open"),
            n("closed"),
            n("filtered")
        );
        assert!(summary.starts_with(&head) && summary.ends_with(&tail), "want {head}…{tail}, got {summary:?}\n{context}");
        assert_eq!(lines.last(), Some(summary), "the summary closes the report\n{context}");
    }

    fn sigint_keeps_results_found_so_far(engine) {
        // Probes go in random order; the DROPs keep the scan busy for
        // seconds, and the first open port answers at once.
        let open = [201, 202, 203, 204];
        let ns = listeners_then_drops(&open, "205:260");
        let ip = ns.ip().to_string();
        let mark = unique_mark();
        let mut args = vec!["scan", &ip, "-p", "201-260", "-e", engine, "-c", "4", "-f", "jsonl"];
        args.extend(FAST);
        let mut scan = Scan::start(&args, &mark);
        let want_open: BTreeSet<u16> = open.into_iter().collect();
        scan.wait_for_lines(|lines| !util::ports_in(lines, "open").is_empty());

        scan.signal(libc::SIGINT);
        let done = scan.finish();
        let context = done.describe();
        assert_eq!(done.status.code(), Some(130), "Ctrl-C exits with 130\n{context}");
        let got = by_port(&done.lines, &context);
        let found = util::ports_in(&done.lines, "open");
        assert!(!found.is_empty() && found.is_subset(&want_open), "{context}");
        for l in done.lines.iter().filter(|l| l.port > 204) {
            assert_eq!((l.state.as_str(), l.reason.as_str()), ("filtered", "no-response"), "port {}\n{context}", l.port);
        }
        assert!(got.len() < 60, "the scan was cut short, so not every port is reported\n{context}");
        assert_no_workers_within(&mark, Duration::from_secs(2));
    }
}

/// Processes engine: a worker killed while probing is reported on stderr,
/// its task retried on another worker, and the scan's results are complete.
#[test]
fn processes_worker_killed_mid_scan_is_replaced_and_its_task_retried() {
    let open = [301, 302];
    let ns = listeners_then_drops(&open, "303:308");
    let ip = ns.ip().to_string();
    let mark = unique_mark();
    let args = [
        "scan",
        &ip,
        "-p",
        "301-308",
        "-e",
        "processes",
        "-c",
        "4",
        "--timeout",
        "1s",
        "--retries",
        "0",
        "-f",
        "jsonl",
    ];
    let mut scan = Scan::start(&args, &mark);

    // A worker holding a socket is in the middle of a probe. Wait for one
    // whose socket is new since the previous look: that probe has just
    // started and, with DROP behind it, lasts the whole 1s timeout, so the
    // worker is surely busy when the signal lands.
    // A worker holds sockets of its own too (the pair its stop byte comes
    // on), so what counts is a socket that was not there at the last look.
    let mut last_sockets: HashMap<u32, BTreeSet<u64>> = HashMap::new();
    let victim = scan.wait_for(|pid| {
        children(pid).into_iter().filter(|&c| is_worker(c)).find(|&c| {
            let now = socket_inodes(c);
            let before = last_sockets.insert(c, now.clone());
            before.is_some_and(|before| now.difference(&before).next().is_some())
        })
    });
    // SAFETY: kill with a pid of a worker process our scan started.
    assert_eq!(unsafe { libc::kill(victim as libc::pid_t, libc::SIGKILL) }, 0, "kill -9 {victim}");

    let done = scan.finish();
    let context = done.describe();
    assert_eq!(done.status.code(), Some(0), "no probe was lost\n{context}");
    let got = by_port(&done.lines, &context);
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), (301..=308).collect::<Vec<_>>(), "{context}");
    for (port, l) in got {
        let want = if open.contains(&port) { ("open", "syn-ack") } else { ("filtered", "no-response") };
        assert_eq!((l.state.as_str(), l.reason.as_str()), want, "port {port}\n{context}");
    }
    assert!(
        done.stderr.contains(&format!("worker process {victim} died"))
            && done.stderr.contains("retrying its task on another worker"),
        "stderr must say worker {victim} died and its task was retried\n{context}"
    );
    assert_no_workers_within(&mark, Duration::from_secs(2));
    drop(ns);
}

/// Processes engine: kill -9 of the parent takes its workers with it.
#[test]
fn processes_parent_killed_leaves_no_worker_behind() {
    let ns = listeners_then_drops(&[], "401:440");
    let ip = ns.ip().to_string();
    let mark = unique_mark();
    let args = ["scan", &ip, "-p", "401-440", "-e", "processes", "-c", "4", "--timeout", "1s", "-f", "jsonl"];
    let mut scan = Scan::start(&args, &mark);
    scan.wait_for(|_| (workers_with_mark(&mark).len() == 4).then_some(()));

    scan.signal(libc::SIGKILL);
    let done = scan.finish();
    assert_eq!(done.status.code(), None, "killed by a signal\n{}", done.describe());
    assert_no_workers_within(&mark, Duration::from_secs(2));
}

// ---------------------------------------------------------------------------
// A running scan, and /proc inspection.

/// Environment variable that tags a trident process and, by inheritance,
/// its workers.
const MARK_ENV: &str = "TRIDENT_TEST_MARK";
/// How long any wait in these tests may take before it is a hang.
const HANG: Duration = Duration::from_secs(30);

fn unique_mark() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{}-{}-{nanos:x}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// A trident process whose stdout lines arrive as they are written.
struct Scan {
    child: Child,
    lines_rx: Receiver<String>,
    raw: Vec<String>,
    lines: Vec<PortLine>,
    stdout_reader: Option<JoinHandle<()>>,
    stderr_reader: Option<JoinHandle<String>>,
}

/// How a [`Scan`] ended.
struct Finished {
    status: ExitStatus,
    lines: Vec<PortLine>,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn describe(&self) -> String {
        format!("status {}\n--- stdout\n{}--- stderr\n{}", self.status, self.stdout, self.stderr)
    }
}

impl Scan {
    fn start(args: &[&str], mark: &str) -> Self {
        let mut child = util::trident()
            .args(args)
            .env(MARK_ENV, mark)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start trident");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines_rx) = mpsc::channel();
        let stdout_reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr_reader = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Scan {
            child,
            lines_rx,
            raw: Vec::new(),
            lines: Vec::new(),
            stdout_reader: Some(stdout_reader),
            stderr_reader: Some(stderr_reader),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads stdout until `done` holds for the lines so far.
    fn wait_for_lines(&mut self, mut done: impl FnMut(&[PortLine]) -> bool) {
        let deadline = Instant::now() + HANG;
        while !done(&self.lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines_rx.recv_timeout(left) {
                Ok(line) => {
                    self.lines.push(parse_line(&line));
                    self.raw.push(line);
                }
                Err(RecvTimeoutError::Timeout) => panic!("scan output never got there; so far: {:?}", self.lines),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("scan ended before its output got there; so far: {:?}", self.lines)
                }
            }
        }
    }

    /// Polls `probe(pid)` until it returns something (while the scan runs).
    fn wait_for<R>(&mut self, mut probe: impl FnMut(u32) -> Option<R>) -> R {
        let deadline = Instant::now() + HANG;
        loop {
            if let Some(r) = probe(self.pid()) {
                return r;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("trident ended ({status}) before the awaited moment of the scan");
            }
            assert!(Instant::now() < deadline, "the awaited moment of the scan never came");
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill with the pid of the child we started and have not reaped.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({}, {signal}): {}", self.pid(), std::io::Error::last_os_error());
    }

    /// Waits for the process to end and collects everything it wrote.
    fn finish(mut self) -> Finished {
        let deadline = Instant::now() + HANG;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for trident") {
                break status;
            }
            assert!(Instant::now() < deadline, "trident did not end within {HANG:?}");
            thread::sleep(Duration::from_millis(10));
        };
        if let Some(reader) = self.stdout_reader.take() {
            reader.join().expect("stdout reader");
        }
        let stderr = self.stderr_reader.take().map(|r| r.join().expect("stderr reader")).unwrap_or_default();
        let mut raw = std::mem::take(&mut self.raw);
        raw.extend(self.lines_rx.try_iter());
        let lines = raw.iter().map(|l| parse_line(l)).collect();
        let stdout = raw.iter().map(|l| format!("{l}\n")).collect();
        Finished { status, lines, stdout, stderr }
    }
}

impl Drop for Scan {
    fn drop(&mut self) {
        // Only reached with the child still running when a test failed.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The fields of /proc/PID/stat after the command name: state, ppid, ...
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Whether `pid` is alive (exists and is not a zombie).
fn is_live(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s != "Z" && s != "X"))
}

fn all_pids() -> Vec<u32> {
    fs::read_dir("/proc").expect("read /proc").filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// Children of `pid`: from /proc/PID/task/*/children where the kernel has
/// it (CONFIG_PROC_CHILDREN), else by scanning every process's parent.
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut supported = false;
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(text) = fs::read_to_string(task.path().join("children")) {
                supported = true;
                found.extend(text.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
            }
        }
    }
    if !supported {
        let parent = pid.to_string();
        found = all_pids().into_iter().filter(|&c| stat_fields(c).is_some_and(|f| f.get(1) == Some(&parent))).collect();
    }
    found
}

/// Whether `pid` runs `trident __worker ...`.
fn is_worker(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == b"__worker"))
}

/// The inode of a socket `pid` holds, if any: a worker holds one only
/// during a probe.
fn socket_inodes(pid: u32) -> BTreeSet<u64> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else { return BTreeSet::new() };
    fds.flatten()
        .filter_map(|fd| {
            let target = fs::read_link(fd.path()).ok()?;
            target.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Live worker processes whose environment carries `MARK_ENV=mark`.
fn workers_with_mark(mark: &str) -> Vec<u32> {
    let entry = format!("{MARK_ENV}={mark}");
    all_pids()
        .into_iter()
        .filter(|&pid| {
            is_worker(pid)
                && is_live(pid)
                && fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == entry.as_bytes()))
        })
        .collect()
}

/// Asserts that no worker tagged `mark` is alive within `limit`; kills any
/// left over so a failure does not leak processes.
fn assert_no_workers_within(mark: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let left = workers_with_mark(mark);
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            for &pid in &left {
                // SAFETY: kill with pids of workers started by our own scan.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
            panic!("worker processes {left:?} still alive {limit:?} after their scan ended");
        }
        thread::sleep(Duration::from_millis(20));
    }
}
