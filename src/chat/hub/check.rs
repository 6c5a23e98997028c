//! Test-only consistency checks of a [`Hub`]'s books, for the property
//! tests of the server core (`serve/core_props.rs`) and of the commands
//! (`hub/props.rs`): membership on both sides, prefixes only for members,
//! every bounded list within its bound.

use super::{ClientId, Hub};
use crate::chat::names::fold;

impl Hub {
    /// Panics unless clients, nicks and channels agree with each other:
    /// every nick names its owner, every membership is recorded on both
    /// sides, no channel is empty.
    pub(crate) fn check(&self) {
        assert!(self.whowas.len() <= self.config.whowas, "{} WHOWAS entries", self.whowas.len());
        for (key, id) in &self.nicks {
            let nick = self.clients.get(id).and_then(|c| c.nick.as_deref());
            assert_eq!(nick.map(fold).as_deref(), Some(key.as_str()), "nick {key} of {id:?}");
        }
        for (id, client) in &self.clients {
            if let Some(nick) = &client.nick {
                assert_eq!(self.nicks.get(&fold(nick)), Some(id), "{id:?}'s nick {nick}");
            }
            assert!(client.registered || client.channels.is_empty(), "{id:?} joined before registering");
            for key in &client.channels {
                let members = self.channels.get(key).map(|c| &c.members);
                assert!(members.is_some_and(|m| m.contains(id)), "{id:?} in {key} on one side only");
            }
            let mut keys = client.channels.clone();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), client.channels.len(), "{id:?} is twice in a channel");
            assert!(client.channels.len() <= self.config.max_channels);
            assert!(
                client.invited().len() <= super::MAX_INVITES,
                "{id:?} holds {} invitations",
                client.invited().len()
            );
            assert!(client.away().is_none_or(|a| a.len() <= super::AWAYLEN));
        }
        for (key, channel) in &self.channels {
            assert!(!channel.members.is_empty(), "{key} is empty and still there");
            let mut members = channel.members.clone();
            members.sort();
            members.dedup();
            assert_eq!(members.len(), channel.members.len(), "a member twice in {key}");
            for id in &channel.members {
                let client = self.clients.get(id);
                assert!(client.is_some_and(|c| c.channels.contains(key)), "{id:?} in {key} on one side only");
            }
            for (id, status) in &channel.status {
                assert!(channel.members.contains(id), "{id:?} has a prefix in {key} and is not a member");
                assert!(status.op || status.voice, "an empty status kept for {id:?} in {key}");
            }
            assert!(channel.bans.len() <= self.config.max_bans, "{key} has {} bans", channel.bans.len());
        }
    }

    /// Every connected client.
    pub(crate) fn client_ids(&self) -> Vec<ClientId> {
        self.clients.keys().copied().collect()
    }

    /// Whether the hub holds nothing at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.nicks.is_empty() && self.channels.is_empty()
    }
}
