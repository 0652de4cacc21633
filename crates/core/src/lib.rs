//! TrackLayer's domain, ports and use cases.
//!
//! Nothing in this crate knows about AWS, HTTP frameworks or SQLite: adapters live in
//! `tracklayer-local` and `tracklayer-aws`, transports in `tracklayer-http` and `functions/*`.

pub mod admin;
pub mod audit;
pub mod bots;
pub mod cache;
pub mod click_ids;
pub mod clock;
pub mod consent;
pub mod control_plane;
pub mod cors;
pub mod crypto;
mod debug;
pub mod deliver;
pub mod destination;
pub mod dsr;
pub mod email;
pub mod error;
pub mod event;
pub mod identity;
pub mod ingest;
pub mod invalidation;
pub mod key_expiry;
pub mod keys;
pub mod name;
mod newtype;
pub mod password;
pub mod ports;
pub mod rbac;
pub mod saml;
pub mod scim;
pub mod services;
pub mod sessions;
pub mod stats;
pub mod user_id;
pub mod varint;
pub mod workspace;

#[cfg(feature = "testkit")]
pub mod testkit;
