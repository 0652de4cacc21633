//! The `tracklayer` CLI: `init`, `serve` (all-in-one local), `destinations`.

pub mod cli;
mod commands;
pub mod stack;
pub mod telemetry;

pub use commands::run;
