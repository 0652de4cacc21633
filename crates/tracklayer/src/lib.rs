//! The `tracklayer` CLI: `init`, `serve` (all-in-one local), `destinations`, `keys`, `users`.

mod aws;
pub mod cli;
mod commands;
pub mod memory;
pub mod stack;
pub mod telemetry;

pub use commands::{run, UsageError};
