//! Property test of the sans-IO server core: many clients send random
//! byte streams (IRC commands, broken lines, invalid bytes) through their
//! own line readers, connect and vanish at random, are refused, closed by
//! the server or overflow their send queues; after every step the core's
//! and the hub's books must agree, and once everyone is gone they must be
//! empty.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::{Core, Limits, Router};
use crate::chat::{ClientId, Hub, HubConfig, Line, LineReader};

/// What the test's shell does next.
#[derive(Clone, Debug)]
enum Step {
    /// Client slot `slot` connects from address number `ip`.
    Connect { slot: usize, ip: u8 },
    /// Slot `slot` writes these bytes (framed by its own line reader).
    Write { slot: usize, bytes: Vec<u8> },
    /// Slot `slot`'s connection ends on its own.
    Vanish { slot: usize },
    /// The shell closes slot `slot` (flood, ping timeout).
    Close { slot: usize },
    /// Slot `slot`'s send queue refuses everything from now on.
    Clog { slot: usize },
    /// The clock jumps past the registration timeout.
    Expire,
    /// The shell finishes the closes the core asked for.
    Flush,
}

const SLOTS: usize = 8;

/// IRC lines worth sending, and some that are not.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let nick = prop::sample::select(vec!["a", "B", "c[1]", "C{1}", "dd", "é", ""]);
    let chan = prop::sample::select(vec!["#x", "#X", "#y", "#z,#x", "0", "#", "bad", "#é"]);
    prop_oneof![
        nick.clone().prop_map(|n| format!("NICK {n}").into_bytes()),
        Just(b"USER u 0 * :real name".to_vec()),
        Just(b"USER".to_vec()),
        chan.clone().prop_map(|c| format!("JOIN {c}").into_bytes()),
        chan.clone().prop_map(|c| format!("PART {c} :bye").into_bytes()),
        (chan.clone(), nick.clone()).prop_map(|(c, n)| format!("PRIVMSG {c},{n} :hi").into_bytes()),
        nick.clone().prop_map(|n| format!("NOTICE {n} :psst").into_bytes()),
        chan.clone().prop_map(|c| format!("TOPIC {c} :new topic").into_bytes()),
        chan.clone().prop_map(|c| format!("NAMES {c}").into_bytes()),
        chan.prop_map(|c| format!("WHO {c}").into_bytes()),
        nick.prop_map(|n| format!("MODE {n} +i").into_bytes()),
        prop::sample::select(vec!["CAP LS", "CAP REQ :x", "CAP END", "PASS pw", "PING :t", "LIST", "QUIT :so long"])
            .prop_map(|l| l.as_bytes().to_vec()),
        Just(b"QUIT".to_vec()),
        Just(b"\xff\xfe".to_vec()),
        Just(b"NICK a\0b".to_vec()),
        Just(b"PRIVMSG #x :a\rb".to_vec()),
        Just(vec![b'x'; 700]),
        prop::collection::vec(any::<u8>(), 0..40),
    ]
}

/// One write: a few lines, CRLF or LF, maybe cut anywhere.
fn write() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec((line(), any::<bool>()), 1..6), any::<prop::sample::Index>(), any::<bool>()).prop_map(
        |(lines, cut, cut_it)| {
            let mut bytes = Vec::new();
            for (line, crlf) in lines {
                bytes.extend_from_slice(&line);
                bytes.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            }
            if cut_it {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes
        },
    )
}

fn step() -> impl Strategy<Value = Step> {
    let slot = 0..SLOTS;
    prop_oneof![
        3 => (slot.clone(), 0..3u8).prop_map(|(slot, ip)| Step::Connect { slot, ip }),
        8 => (slot.clone(), write()).prop_map(|(slot, bytes)| Step::Write { slot, bytes }),
        1 => slot.clone().prop_map(|slot| Step::Vanish { slot }),
        1 => slot.clone().prop_map(|slot| Step::Close { slot }),
        1 => slot.prop_map(|slot| Step::Clog { slot }),
        1 => Just(Step::Expire),
        2 => Just(Step::Flush),
    ]
}

/// The test's shell: what was routed, which queues refuse.
#[derive(Default)]
struct Shell {
    clogged: HashSet<ClientId>,
    /// Connections the core asked to close; the shell ends them (and
    /// calls `gone`) at the next flush, as a real shell does once written.
    closing: HashSet<ClientId>,
    /// Lines routed to a connection after it was closed: must not happen.
    late: Vec<ClientId>,
}

impl Router for Shell {
    fn deliver(&mut self, to: ClientId, line: &Line) -> bool {
        assert!(line.ends_with("\r\n") && line.len() <= crate::chat::MAX_LINE, "{line:?}");
        if self.closing.contains(&to) && !line.starts_with("ERROR ") {
            self.late.push(to);
        }
        !self.clogged.contains(&to)
    }
    fn close(&mut self, id: ClientId) {
        self.closing.insert(id);
    }
}

fn run(steps: Vec<Step>) {
    let limits = Limits { max_clients: 6, max_per_ip: 3, registration_timeout: Duration::ZERO, ..Limits::default() };
    let config = HubConfig { max_channels: 2, ..HubConfig::default() };
    let mut core = Core::new(Hub::new(config, 0), limits);
    let mut shell = Shell::default();
    let mut slots: HashMap<usize, (ClientId, LineReader)> = HashMap::new();
    let mut next = 0;
    let start = Instant::now();
    let end = |core: &mut Core, shell: &mut Shell, id: ClientId| {
        core.gone(id, "gone", shell);
        shell.closing.remove(&id);
        shell.clogged.remove(&id);
    };
    for step in steps {
        match step {
            Step::Connect { slot, ip } => {
                if let Some((id, _)) = slots.remove(&slot) {
                    end(&mut core, &mut shell, id);
                }
                next += 1;
                let id = ClientId(next);
                let ip = IpAddr::from([127, 0, 0, ip + 1]);
                core.connect(id, ip, start, &mut shell);
                slots.insert(slot, (id, LineReader::new()));
            }
            Step::Write { slot, bytes } => {
                let Some((id, reader)) = slots.get_mut(&slot) else { continue };
                // A real shell reads nothing more once its connection closes.
                if shell.closing.contains(id) {
                    continue;
                }
                reader.push(&bytes);
                let events: Vec<_> = std::iter::from_fn(|| reader.next_event()).collect();
                core.events(*id, events, &mut shell);
            }
            Step::Vanish { slot } => {
                if let Some((id, _)) = slots.remove(&slot) {
                    end(&mut core, &mut shell, id);
                }
            }
            Step::Close { slot } => {
                if let Some((id, _)) = slots.get(&slot) {
                    core.close(*id, "Excess Flood", &mut shell);
                }
            }
            Step::Clog { slot } => {
                if let Some((id, _)) = slots.get(&slot) {
                    shell.clogged.insert(*id);
                }
            }
            Step::Expire => core.expire(start + Duration::from_secs(1), &mut shell),
            Step::Flush => {
                let closing: Vec<ClientId> = shell.closing.iter().copied().collect();
                slots.retain(|_, (id, _)| !closing.contains(id));
                for id in closing {
                    end(&mut core, &mut shell, id);
                }
            }
        }
        core.check();
        assert!(shell.late.is_empty(), "lines routed to closed connections {:?}", shell.late);
    }
    for (_, (id, _)) in slots.drain() {
        end(&mut core, &mut shell, id);
    }
    let closing: Vec<ClientId> = shell.closing.iter().copied().collect();
    for id in closing {
        end(&mut core, &mut shell, id);
    }
    core.check();
    assert!(core.is_empty(), "something is still held once everyone is gone: {core:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_core_books_agree_after_every_step_and_empty_when_everyone_is_gone(
        steps in prop::collection::vec(step(), 1..80)
    ) {
        run(steps);
    }
}
