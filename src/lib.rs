//! SecondMe: a person's AI twin on WhatsApp, its worker, its Redis contract and
//! its terminal control room.

pub mod bridge;
pub mod config;
pub mod connection;
pub mod conversation;
pub mod duration;
pub mod entry;
pub mod graph;
pub mod learn;
pub mod llm_usage;
pub mod media;
pub mod monitor;
pub mod paths;
pub mod private_file;
pub mod reply;
pub mod resp;
pub mod schema;
pub mod seal;
pub mod server;
pub mod sleep;
pub mod stable_hash;
pub mod store;
pub mod worker;

#[cfg(test)]
mod architecture;
