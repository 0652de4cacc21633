//! Bounds on ingest's work, each refusing at once ([`Busy`], a 503 with `Retry-After`) rather
//! than queueing without bound:
//!
//! - [`PrepareGate`]: where [`super::prepare`] runs — CPU-bound work, bounded in number and
//!   kept off the async workers, so that a few heavy requests cannot starve `/healthz` and
//!   every other request;
//! - [`Admission`] (also the gate's own): requests between their parse and their stored,
//!   queued events. A prepared batch of 100 events holds a few MiB until storage takes it,
//!   so bounding how many are in flight keeps memory flat when storage is the bottleneck.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::{Semaphore, SemaphorePermit};

/// At most `slots` holders at once; up to `queue` more wait for a slot, and beyond that the
/// next is refused at once ([`Busy`]).
#[derive(Debug)]
pub struct Admission {
    slots: Semaphore,
    waiting: AtomicUsize,
    queue: usize,
}

/// Every slot is taken and the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(slots: usize, queue: usize) -> Self {
        Self {
            slots: Semaphore::new(slots.max(1)),
            waiting: AtomicUsize::new(0),
            queue,
        }
    }

    /// A slot, held until the permit drops; waits in the queue if there is room in it.
    pub async fn enter(&self) -> Result<SemaphorePermit<'_>, Busy> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let _waiting = Waiting(&self.waiting);
        self.slots.acquire().await.map_err(|_| Busy)
    }
}

/// At most `slots` preparations at once, up to `queue` more waiting ([`Admission`]). A
/// preparation of at least `inline_below` input bytes runs with its worker thread handed over
/// to the blocking pool (`block_in_place`), so the runtime keeps serving other requests
/// meanwhile.
#[derive(Debug)]
pub struct PrepareGate {
    admission: Admission,
    inline_below: usize,
}

impl PrepareGate {
    /// Inputs smaller than this are prepared in place: a handover costs more than they do.
    pub const DEFAULT_INLINE_BELOW: usize = 64 * 1024;
    pub const DEFAULT_QUEUE: usize = 64;

    pub fn new(slots: usize, queue: usize, inline_below: usize) -> Self {
        Self {
            admission: Admission::new(slots, queue),
            inline_below,
        }
    }

    /// One slot per CPU, the default queue and handover threshold.
    pub fn per_cpu() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(cpus, Self::DEFAULT_QUEUE, Self::DEFAULT_INLINE_BELOW)
    }

    /// Runs `work` (of `input_bytes` of input) in a slot.
    pub async fn run<T>(&self, input_bytes: usize, work: impl FnOnce() -> T) -> Result<T, Busy> {
        let _permit = self.admission.enter().await?;
        let multi_thread =
            Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
        if multi_thread && input_bytes >= self.inline_below {
            Ok(tokio::task::block_in_place(work))
        } else {
            Ok(work())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn refuses_at_once_when_every_slot_is_taken_and_the_queue_is_full() {
        let gate = Arc::new(PrepareGate::new(1, 1, 0));
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        // Holds the slot until released.
        let holder = {
            let gate = gate.clone();
            tokio::spawn(async move {
                let _permit = gate.admission.slots.acquire().await.unwrap();
                entered_tx.send(()).unwrap();
                release_rx.await.unwrap();
            })
        };
        entered_rx.await.unwrap();
        let queued = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.run(10, || 7).await })
        };
        // The second waiter finds the one-place queue full.
        while gate.admission.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.run(10, || 8).await, Err(Busy));
        release_tx.send(()).unwrap();
        holder.await.unwrap();
        assert_eq!(queued.await.unwrap(), Ok(7));
        assert_eq!(gate.run(10, || 9).await, Ok(9));
    }
}
