//! A real IRC client library that we did not write — the `irc` crate —
//! against `trident chat serve` on every engine: register, auto-join a
//! channel, talk in it, talk privately, change nick, quit.

use std::time::Duration;

use futures_util::StreamExt;
use irc::client::ClientStream;
use irc::client::prelude::{Client, Command, Config};
use irc::proto::Message;

use crate::chat_harness::ChatServer;
use crate::engine_tests;

const WAIT: Duration = Duration::from_secs(10);

/// Messages a client received; a task keeps polling its stream (which is
/// also what sends the client's own messages).
type Inbox = tokio::sync::mpsc::UnboundedReceiver<Message>;

async fn client(port: u16, nick: &str) -> (Client, Inbox) {
    let config = Config {
        nickname: Some(nick.into()),
        username: Some(nick.into()),
        realname: Some(format!("{nick} (irc crate)")),
        server: Some("127.0.0.1".into()),
        port: Some(port),
        channels: vec!["#room".into()],
        ..Config::default()
    };
    let mut client = Client::from_config(config).await.expect("irc client");
    client.identify().expect("identify");
    let stream = client.stream().expect("stream");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(pump(stream, tx));
    (client, rx)
}

async fn pump(mut stream: ClientStream, tx: tokio::sync::mpsc::UnboundedSender<Message>) {
    while let Some(Ok(message)) = stream.next().await {
        if tx.send(message).is_err() {
            break;
        }
    }
}

/// The next message for which `pick` says yes (others are skipped).
async fn until<T>(inbox: &mut Inbox, what: &str, mut pick: impl FnMut(&Message) -> Option<T>) -> T {
    let found = tokio::time::timeout(WAIT, async {
        while let Some(message) = inbox.recv().await {
            if let Some(found) = pick(&message) {
                return Some(found);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(found)) => found,
        Ok(None) => panic!("the connection ended before {what}"),
        Err(_) => panic!("no {what} within {WAIT:?}"),
    }
}

fn source(m: &Message) -> Option<&str> {
    m.source_nickname()
}

engine_tests! {
    fn the_irc_crate_registers_joins_talks_renames_and_quits(engine) {
        let server = ChatServer::start(engine, &[]);
        let port = server.addr.port();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let (alice, mut alice_in) = client(port, "alice").await;
            until(&mut alice_in, "alice's own JOIN", |m| {
                matches!(&m.command, Command::JOIN(chan, ..) if chan == "#room" && source(m) == Some("alice")).then_some(())
            }).await;
            let (bob, mut bob_in) = client(port, "bob").await;
            until(&mut alice_in, "bob's JOIN", |m| {
                matches!(&m.command, Command::JOIN(chan, ..) if chan == "#room" && source(m) == Some("bob")).then_some(())
            }).await;
            until(&mut bob_in, "bob's own JOIN", |m| matches!(&m.command, Command::JOIN(..)).then_some(())).await;

            bob.send_privmsg("#room", "hello, room").expect("send");
            let (from, to, text) = until(&mut alice_in, "bob's channel message", |m| match &m.command {
                Command::PRIVMSG(to, text) => Some((source(m).map(str::to_owned), to.clone(), text.clone())),
                _ => None,
            }).await;
            assert_eq!((from.as_deref(), to.as_str(), text.as_str()), (Some("bob"), "#room", "hello, room"));

            alice.send_privmsg("bob", "just between us").expect("send");
            let (from, to, text) = until(&mut bob_in, "alice's private message", |m| match &m.command {
                Command::PRIVMSG(to, text) => Some((source(m).map(str::to_owned), to.clone(), text.clone())),
                _ => None,
            }).await;
            assert_eq!((from.as_deref(), to.as_str(), text.as_str()), (Some("alice"), "bob", "just between us"));

            bob.send(Command::NICK("robert".into())).expect("send");
            let (old, new) = until(&mut alice_in, "bob's nick change", |m| match &m.command {
                Command::NICK(new) => Some((source(m).map(str::to_owned), new.clone())),
                _ => None,
            }).await;
            assert_eq!((old.as_deref(), new.as_str()), (Some("bob"), "robert"));

            bob.send_quit("see you").expect("send");
            let (who, why) = until(&mut alice_in, "robert's quit", |m| match &m.command {
                Command::QUIT(why) => Some((source(m).map(str::to_owned), why.clone())),
                _ => None,
            }).await;
            assert_eq!((who.as_deref(), why.as_deref()), (Some("robert"), Some("Quit: see you")));
            drop(alice);
        });
    }
}
