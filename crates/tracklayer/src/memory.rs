//! The process's memory footprint.
//!
//! mimalloc commits its first arena (1 GiB of address space) at once, and the kernel backs the
//! touched parts of a committed region with transparent huge pages when it may: each 2 MiB
//! page that holds a few live allocations then counts 2 MiB of resident memory. Measured on
//! `serve` (smaps `AnonHugePages`): idle, 39 MiB resident, 20 MiB of it huge pages; under
//! `make measure-ingest`, a peak of 70–74 MiB. With transparent huge pages off for the
//! process: idle 27 MiB, under the same load 60.5–61.2 MiB, at the same rate (README §
//! Performance). Two parts: mimalloc is built not to ask for huge pages itself (its `no_thp`
//! feature, which also covers what it allocates before `main`), and [`without_transparent_huge_pages`]
//! turns them off for the process where the system gives them unasked (THP `always`) and for
//! the other allocators in it (SQLite's).

/// Turns transparent huge pages off for this process from now on (and for the processes it
/// starts), so that its resident memory is what it uses. Where that is not possible (not
/// Linux, or a kernel without the setting), memory is only larger: logged, not an error.
pub fn without_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %e, "transparent huge pages stay as the system has them");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_process_runs_without_transparent_huge_pages_after_it() {
        super::without_transparent_huge_pages();
        assert!(rustix::thread::transparent_huge_pages_are_disabled().unwrap());
    }
}
