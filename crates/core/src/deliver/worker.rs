//! The local worker: the receive loop of one destination kind's queue.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::service::DeliveryService;
use crate::destination::DestinationKind;
use crate::ports::DeliveryQueue;

/// Drains one kind's queue until `stop` turns true: receive, deliver concurrently, settle.
pub async fn run_worker(
    service: Arc<DeliveryService>,
    queue: Arc<dyn DeliveryQueue>,
    kind: DestinationKind,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let idle = Duration::from_millis(200);
    let in_flight = Arc::new(Semaphore::new(256));
    loop {
        if *stop.borrow() {
            break;
        }
        let free = in_flight.available_permits().min(10);
        let mut received = Vec::new();
        let window_ends = tokio::time::Instant::now() + service.config.batch_window;
        while received.len() < free {
            match queue
                .receive(kind, free - received.len(), service.config.visibility)
                .await
            {
                Ok(r) if r.is_empty() && received.is_empty() => break,
                Ok(r) => received.extend(r),
                Err(e) => {
                    tracing::warn!(error = %e, kind = %kind, "receive failed");
                    break;
                }
            }
            if received.len() >= free || tokio::time::Instant::now() >= window_ends {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        if received.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let Ok(permit) = in_flight
            .clone()
            .acquire_many_owned(received.len() as u32)
            .await
        else {
            break;
        };
        let service = service.clone();
        tokio::spawn(async move {
            let dispositions = service.process(kind, &received).await;
            for (msg, d) in received.iter().zip(&dispositions) {
                if let Err(e) = service.apply(kind, msg, d).await {
                    tracing::warn!(error = %e, kind = %kind, "could not settle a message; it will be received again");
                }
            }
            drop(permit);
        });
    }
    // Let in-flight deliveries finish so their outcomes are recorded.
    let _ = in_flight.acquire_many(256).await;
}
