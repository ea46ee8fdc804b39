//! The WhatsApp gateway against a real redis-server: its behaviour behind the
//! `Link`/`Connector` trait with a recording fake (WhatsApp's network cannot
//! run here), and the real binary with the real library when there is no network.

#[path = "../common/mod.rs"]
mod common;

mod acl;
#[cfg(feature = "whatsapp")]
mod binary;
mod connection;
mod control_room;
mod durability;
mod failures;
mod fake;
#[cfg(feature = "whatsapp")]
mod files;
mod ids;
mod inbox;
mod lease;
mod login;
mod media;
mod owner;
mod pacing;
mod sender;
mod setup;
