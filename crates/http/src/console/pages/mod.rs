//! The console's pages, one module per area.

pub mod auth;
