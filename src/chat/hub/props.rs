//! Property test of the commands: random sequences of channel modes,
//! KICK, INVITE, keyed JOINs, bans, AWAY, nick changes, queries, OPER and
//! KILL from a handful of clients never panic, every line stays framed
//! and within 512 bytes, and after every step the books agree (members
//! on both sides, prefixes only for members, every list within its
//! bound; see `check.rs`).

use proptest::prelude::*;

use super::tests::commands::cheap_hash;
use super::{ClientId, Hub, HubConfig, OperConfig, Outbox};
use crate::chat::MAX_LINE;

const CLIENTS: u64 = 5;

fn command() -> impl Strategy<Value = String> {
    let nick = prop::sample::select(vec!["n0", "n1", "N2", "n3", "n4", "x", "*", ""]);
    let chan = prop::sample::select(vec!["#a", "#A", "#b", "#a,#b", "#c", "bad"]);
    let modes = prop::sample::select(vec![
        "+o", "-o", "+v", "-v", "+b", "-b", "b", "+k", "-k", "+l", "-l", "+i", "-i", "+m", "+n", "-n", "+t", "-t",
        "+s", "-s", "+ov-b", "+kl", "+z", "+bbbbb", "-ovovov",
    ]);
    let arg = prop::sample::select(vec!["n0", "n1", "N2", "*!*@*", "n1!*@*", "key", "3", "0", "-1", "*", ""]);
    prop_oneof![
        (chan.clone(), modes, prop::collection::vec(arg.clone(), 0..6))
            .prop_map(|(c, m, a)| format!("MODE {c} {m} {}", a.join(" "))),
        (chan.clone(), arg.clone()).prop_map(|(c, k)| format!("JOIN {c} {k}")),
        chan.clone().prop_map(|c| format!("PART {c}")),
        (chan.clone(), nick.clone()).prop_map(|(c, n)| format!("KICK {c} {n} :out")),
        (nick.clone(), chan.clone()).prop_map(|(n, c)| format!("INVITE {n} {c}")),
        (chan.clone(), nick.clone()).prop_map(|(c, n)| format!("PRIVMSG {c},{n} :hi")),
        chan.clone().prop_map(|c| format!("TOPIC {c} :topic")),
        chan.clone().prop_map(|c| format!("NAMES {c}")),
        chan.prop_map(|c| format!("WHO {c}")),
        nick.clone().prop_map(|n| format!("NICK {n}")),
        nick.clone().prop_map(|n| format!("WHOIS {n}")),
        nick.clone().prop_map(|n| format!("WHOWAS {n}")),
        nick.clone().prop_map(|n| format!("KILL {n} :bye")),
        nick.prop_map(|n| format!("USERHOST {n} n1 n2")),
        prop::sample::select(vec![
            "AWAY :gone",
            "AWAY",
            "ISON n0 n1 n2 n3",
            "LUSERS",
            "MODE n0 +i",
            "MODE n1 -o+i",
            "OPER root pw",
            "OPER root nope",
            "QUIT",
            "VERSION",
            "TIME",
            "ADMIN",
            "INFO",
        ])
        .prop_map(str::to_owned),
    ]
}

fn register(hub: &mut Hub, id: u64, now: u64, out: &mut Outbox) {
    hub.connect(ClientId(id), "10.0.0.1");
    hub.handle_line(ClientId(id), &format!("NICK n{id}"), now, out);
    hub.handle_line(ClientId(id), "USER u 0 * :real", now, out);
}

fn run(steps: Vec<(u64, String)>) {
    let config = HubConfig {
        max_channels: 2,
        max_bans: 3,
        whowas: 4,
        opers: vec![OperConfig { name: "root".into(), hash: cheap_hash("pw") }],
        ..HubConfig::default()
    };
    let mut hub = Hub::new(config, 0);
    let mut out = Outbox::new();
    for id in 0..CLIENTS {
        register(&mut hub, id, 0, &mut out);
    }
    for (now, (id, line)) in steps.into_iter().enumerate() {
        let now = now as u64 / 3;
        out.clear();
        // A client that quit or was killed comes back.
        if !hub.contains(ClientId(id)) {
            register(&mut hub, id, now, &mut out);
        }
        hub.handle_line(ClientId(id), &line, now, &mut out);
        for delivery in &out.deliveries {
            let framed = delivery.line.ends_with("\r\n") && delivery.line.len() <= MAX_LINE;
            assert!(framed, "{line:?} gave {:?}", delivery.line);
        }
        for closed in std::mem::take(&mut out.closes) {
            hub.disconnected(closed, "closed", &mut out);
        }
        hub.check();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_commands_keep_the_books(steps in prop::collection::vec((0..CLIENTS, command()), 1..80)) {
        run(steps);
    }
}
