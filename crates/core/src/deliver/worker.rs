//! The local worker: the receive loop of one destination kind's queue.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::service::DeliveryService;
use crate::destination::DestinationKind;
use crate::ports::{DeliveryQueue, Received};

/// The bytes of received messages (body and shared sealed fields) one kind's worker holds
/// in flight, in KiB: what bounds its memory, since a message's items are read and opened
/// while it is in flight. A 100-event request's message by reference is some 22 KiB, so
/// about 45 of those; a one-event message is under 1 KiB and counts as 1, so up to 1,024.
pub const IN_FLIGHT_KIB: u32 = 1024;

/// What a received message counts against [`IN_FLIGHT_KIB`]: its bytes in KiB, rounded
/// up, at least 1 and at most the whole budget (so that any message can go alone).
fn weight(m: &Received) -> u32 {
    let bytes = m.body.len() + m.shared.as_ref().map_or(0, Vec::len);
    u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, IN_FLIGHT_KIB)
}

/// Drains one kind's queue until `stop` turns true: receive, deliver concurrently, settle.
pub async fn run_worker(
    service: Arc<DeliveryService>,
    queue: Arc<dyn DeliveryQueue>,
    kind: DestinationKind,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let idle = Duration::from_millis(200);
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_KIB as usize));
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
        let weight = received
            .iter()
            .map(weight)
            .fold(0u32, u32::saturating_add)
            .min(IN_FLIGHT_KIB);
        let Ok(permit) = in_flight.clone().acquire_many_owned(weight).await else {
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
    let _ = in_flight.acquire_many(IN_FLIGHT_KIB).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::DestinationId;
    use crate::ports::Receipt;
    use crate::workspace::{Region, WorkspaceId};

    fn received(body: usize, shared: Option<usize>) -> Received {
        Received {
            receipt: Receipt("r".into()),
            destination_id: DestinationId::new("dst_w"),
            workspace_id: WorkspaceId::new(Region::Eu, "w"),
            body: vec![0; body],
            receive_count: 1,
            enqueued_at: crate::testkit::T0,
            shared: shared.map(|n| vec![0; n]),
        }
    }

    #[test]
    fn a_message_counts_its_bytes_in_kib_at_least_one_at_most_the_budget() {
        assert_eq!(weight(&received(0, None)), 1);
        assert_eq!(weight(&received(300, Some(200))), 1);
        assert_eq!(weight(&received(2_200, Some(20_800))), 23);
        assert_eq!(weight(&received(1_024, Some(1))), 2);
        assert_eq!(weight(&received(64 << 20, None)), IN_FLIGHT_KIB);
    }
}
