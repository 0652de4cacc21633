//! The `tracklayer` command: wiring only.

use clap::Parser;

/// mimalloc, not glibc malloc: measured in README § Performance (ingest's request buffers and
/// per-event values made glibc's free lists a quarter of `serve`'s CPU). Built with its
/// `override` feature, it is also the C `malloc` that SQLite allocates with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = tracklayer::cli::Cli::parse();
    tracklayer::telemetry::init(cli.log_format, cli.verbose);
    tracklayer::memory::without_transparent_huge_pages();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tracklayer::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<tracklayer::UsageError>().is_some() => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
