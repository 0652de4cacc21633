//! Batching: a group's items opened, screened and grouped into the requests a vendor takes.
//!
//! [`batches`] is the one grouping there is: the delivery service sends what it plans, and
//! `tracklayer_connectors::batches` (which the connector tests use) is this function.

use std::collections::HashMap;

use super::service::{DeliveryError, DeliveryService, ItemResult, Part};
use super::{Connector, DropReason, OpenedItem, Target};
use crate::crypto::WorkspaceKeys;
use crate::error::StoreError;
use crate::event::{sealed_wire, DeliveryItem, EventId, QueueBody, SealedFields};
use crate::ports::LogOf;

/// A group's items on their way out: what became of each item so far (`results[message][item]`)
/// and the opened items to send, each with its place. The items are moved out of their
/// messages to be opened (a copy of each was 4 % of `serve`'s core while delivering, and
/// dropping it 2.5 %), the ones not sent kept beside them; [`Opened::give_back`] puts every
/// item back in its place before the messages are settled.
#[derive(Debug, Default)]
pub(super) struct Opened {
    pub(super) results: Vec<Vec<ItemResult>>,
    pub(super) items: Vec<((usize, usize), OpenedItem)>,
    /// `kept[message][item]`: the items not opened (already delivered, or screened out);
    /// `None` where the item is in `items`.
    kept: Vec<Vec<Option<DeliveryItem>>>,
}

impl Opened {
    /// Puts every item back into its message, in its place, and answers the results. An
    /// item missing from both `items` and `kept` cannot happen (each is put in one of them);
    /// were it to, the group would be retried whole rather than settled with a result
    /// against the wrong item.
    pub(super) fn give_back(
        mut self,
        group: &mut [Part],
    ) -> Result<Vec<Vec<ItemResult>>, DeliveryError> {
        let lost = || StoreError::transient("deliver", "an opened item was not given back");
        if self.kept.len() != group.len() {
            return Err(lost().into());
        }
        for ((m, i), o) in self.items.drain(..) {
            if let Some(slot) = self.kept.get_mut(m).and_then(|k| k.get_mut(i)) {
                *slot = Some(o.item);
            }
        }
        for (p, kept) in group.iter_mut().zip(self.kept) {
            p.body.items = kept
                .into_iter()
                .collect::<Option<Vec<_>>>()
                .ok_or_else(lost)?;
        }
        Ok(self.results)
    }
}

/// Splits screened items into the batches one request each may carry: items with the same
/// [`Connector::group_key`] (GA4: client id, user id, consent and user data) share requests of
/// at most [`Connector::batch_limit`] items and, for a vendor with
/// [`Connector::byte_limits`], of at most its request bytes (an item larger than that goes
/// alone); groups in order of first appearance, items in order.
pub fn batches<'a>(
    connector: &dyn Connector,
    target: &Target<'_>,
    items: &[&'a OpenedItem],
) -> Vec<Vec<&'a OpenedItem>> {
    plan(connector, target, items)
        .into_iter()
        .map(|batch| batch.into_iter().map(|i| items[i]).collect())
        .collect()
}

/// [`batches`], as positions in `items`.
pub(super) fn plan(
    connector: &dyn Connector,
    target: &Target<'_>,
    items: &[&OpenedItem],
) -> Vec<Vec<usize>> {
    let limit = connector.batch_limit(target).max(1);
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_key: HashMap<Option<String>, usize> = HashMap::new();
    for (pos, o) in items.iter().enumerate() {
        let g = *by_key.entry(connector.group_key(o)).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(pos);
    }
    let bytes = connector.byte_limits(target).map(|b| b.request);
    let size = |pos: usize| bytes.map_or(0, |_| connector.item_bytes(target, items[pos]));
    let mut out = Vec::new();
    for list in groups {
        let (mut batch, mut used) = (Vec::new(), 0usize);
        for pos in list {
            let n = size(pos);
            let full = batch.len() >= limit || bytes.is_some_and(|max| used + n > max);
            if full && !batch.is_empty() {
                out.push(std::mem::take(&mut batch));
                used = 0;
            }
            batch.push(pos);
            used += n;
        }
        if !batch.is_empty() {
            out.push(batch);
        }
    }
    out
}

/// Why an item is larger than its vendor takes, if it is ([`Connector::byte_limits`]).
fn oversized(connector: &dyn Connector, target: &Target<'_>, o: &OpenedItem) -> Option<String> {
    let max = connector.byte_limits(target)?.item;
    let n = connector.item_bytes(target, o);
    (n > max).then(|| {
        format!(
            "the event takes {n} bytes; {} takes at most {max} bytes an event",
            target.destination.kind
        )
    })
}

impl DeliveryService {
    /// Opens the sealed fields of a group's items and screens them; skips what was already
    /// delivered (idempotence).
    pub(super) async fn open_group(
        &self,
        connector: &dyn Connector,
        target: &Target<'_>,
        group: &mut [Part],
        keys: &WorkspaceKeys,
    ) -> Result<Opened, DeliveryError> {
        let Some(first) = group.first() else {
            return Ok(Opened::default());
        };
        let (dest, now) = (target.destination, target.now);
        let ids: Vec<EventId> = group
            .iter()
            .flat_map(|p| p.body.items.iter().map(|i| i.event_id))
            .collect();
        let done = self
            .ports
            .log
            .delivered(LogOf::new(&first.body.workspace_id, &dest.id), &ids, now)
            .await?;
        let mut opened = Opened {
            results: group
                .iter()
                .map(|p| vec![ItemResult::Skipped; p.body.items.len()])
                .collect(),
            items: Vec::with_capacity(ids.len()),
            kept: Vec::with_capacity(group.len()),
        };
        for (m, p) in group.iter_mut().enumerate() {
            let items = std::mem::take(&mut p.body.items);
            let mut kept = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                if done.contains(&item.event_id) {
                    kept.push(Some(item));
                    continue;
                }
                match open_one(connector, target, keys, &p.body, item) {
                    Opening::Send(o) => {
                        // Until its request has an outcome, an item is retried, never acked.
                        opened.results[m][i] = ItemResult::Retry {
                            after: None,
                            reason: "no outcome was recorded".into(),
                            status: None,
                        };
                        opened.items.push(((m, i), o));
                        kept.push(None);
                    }
                    Opening::Keep(result, item) => {
                        opened.results[m][i] = result;
                        kept.push(Some(item));
                    }
                }
            }
            opened.kept.push(kept);
        }
        Ok(opened)
    }
}

/// What [`open_one`] made of an item.
enum Opening {
    /// Opened and screened: to send.
    Send(OpenedItem),
    /// Not to send: what becomes of it instead, and the item, given back.
    Keep(ItemResult, DeliveryItem),
}

/// One item opened and screened, or what becomes of it instead.
fn open_one(
    connector: &dyn Connector,
    target: &Target<'_>,
    keys: &WorkspaceKeys,
    body: &QueueBody,
    item: DeliveryItem,
) -> Opening {
    let sealed = match open_sealed(keys, body, &item) {
        Ok(sealed) => sealed,
        Err(e) => {
            // Never sent with fields missing: dead-lettered with the reason.
            let result = ItemResult::Permanent {
                reason: e.to_string(),
                status: None,
            };
            return Opening::Keep(result, item);
        }
    };
    let o = OpenedItem { item, sealed };
    let result = match connector.screen(target, &o) {
        // Larger than the vendor takes: never sent, dead-lettered with the reason.
        Ok(()) => match oversized(connector, target, &o) {
            Some(reason) => ItemResult::Permanent {
                reason,
                status: None,
            },
            None => return Opening::Send(o),
        },
        Err(DropReason::Age(r)) => ItemResult::Dropped(format!("age: {r}")),
        Err(DropReason::Invalid(r)) => ItemResult::Dropped(format!("invalid: {r}")),
        Err(DropReason::Unsendable(reason)) => ItemResult::Permanent {
            reason,
            status: None,
        },
    };
    Opening::Keep(result, o.item)
}

/// Opens an item's sealed fields (its own, or its event's shared ones), and the IP and user agent of its event's operational record
/// when it carries one (an item queued by reference). Sealed by ingest under the workspace
/// key, they either open and parse or are corrupt: an error (logged, with ids only), never
/// empty fields.
pub fn open_sealed(
    keys: &WorkspaceKeys,
    body: &QueueBody,
    item: &DeliveryItem,
) -> Result<SealedFields, StoreError> {
    let mut fields = match (&item.sealed, &item.shared) {
        (Some(sealed), _) => open_item_fields(keys, body, item, sealed, body.item_aad(item))?,
        (None, Some(shared)) => {
            let aad = QueueBody::shared_aad(&body.workspace_id, &item.event_id.to_string());
            open_item_fields(keys, body, item, shared, aad)?
        }
        (None, None) => SealedFields::default(),
    };
    if let Some(record) = &item.operational {
        let SealedFields { ip, user_agent, .. } = open_operational(keys, body, item, record)?;
        fields.ip = fields.ip.or(ip);
        fields.user_agent = fields.user_agent.or(user_agent);
    }
    Ok(fields)
}

/// What a queued item's sealed part (`what`) that does not open or parse becomes: an error,
/// logged with ids only.
fn corrupt_part<'a>(
    body: &'a QueueBody,
    item: &'a DeliveryItem,
    what: &'static str,
) -> impl Fn(&'static str) -> StoreError + 'a {
    move |why| {
        tracing::error!(
            workspace = %body.workspace_id,
            destination = %body.destination_id,
            event = %item.event_id,
            part = what,
            why,
            "a queued item's sealed part is corrupt"
        );
        StoreError::corrupt(what, why)
    }
}

/// An operational record's IP and user agent (ingest's `operational_record`).
fn open_operational(
    keys: &WorkspaceKeys,
    body: &QueueBody,
    item: &DeliveryItem,
    record: &crate::crypto::Sealed,
) -> Result<SealedFields, StoreError> {
    let corrupt = corrupt_part(body, item, "operational record of a queued item");
    let aad = crate::crypto::aad(
        crate::crypto::SealLabel::Operational,
        &body.workspace_id,
        &item.event_id.to_string(),
    );
    let plain = keys
        .open(&aad, record)
        .map_err(|_| corrupt("the sealed value does not open"))?;
    sealed_wire::decode_fields(&plain).map_err(|_| corrupt("not an operational record"))
}

fn open_item_fields(
    keys: &WorkspaceKeys,
    body: &QueueBody,
    item: &DeliveryItem,
    sealed: &crate::crypto::Sealed,
    aad: Vec<u8>,
) -> Result<SealedFields, StoreError> {
    let corrupt = corrupt_part(body, item, "sealed fields of a queued item");
    let plain = keys
        .open(&aad, sealed)
        .map_err(|_| corrupt("the sealed value does not open"))?;
    sealed_wire::decode_fields(&plain).map_err(|_| corrupt("not sealed fields"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::{DestinationId, DestinationKind};
    use crate::workspace::{Region, WorkspaceId};

    fn item(n: u32) -> DeliveryItem {
        let id = EventId::parse(&format!("evt_00000000-0000-7000-8000-{n:012}")).unwrap();
        crate::deliver::tests::item_at(id, &format!("e{n}"), time::OffsetDateTime::UNIX_EPOCH)
    }

    fn part(index: usize, items: Vec<DeliveryItem>) -> Part {
        Part {
            index,
            attempts: 0,
            body: QueueBody {
                v: QueueBody::VERSION,
                attempts: 0,
                workspace_id: WorkspaceId::new(Region::Eu, "01abc"),
                destination_id: DestinationId::new("dst_1"),
                kind: DestinationKind::Webhook,
                items,
                by_reference: false,
            },
        }
    }

    fn opened(item: DeliveryItem) -> OpenedItem {
        OpenedItem {
            item,
            sealed: SealedFields::default(),
        }
    }

    #[test]
    fn every_item_goes_back_to_its_message_in_its_place() {
        let mut group = vec![part(0, Vec::new()), part(1, Vec::new())];
        let all = Opened {
            results: vec![vec![ItemResult::Skipped; 3], vec![ItemResult::Skipped; 1]],
            // Sent: the first and third items of the first message, and the second's one.
            items: vec![
                ((1, 0), opened(item(4))),
                ((0, 2), opened(item(3))),
                ((0, 0), opened(item(1))),
            ],
            kept: vec![vec![None, Some(item(2)), None], vec![None]],
        };
        let results = all.give_back(&mut group).unwrap();
        assert_eq!(results.len(), 2);
        let names = |p: &Part| -> Vec<String> {
            p.body.items.iter().filter_map(|i| i.name.clone()).collect()
        };
        assert_eq!(names(&group[0]), ["e1", "e2", "e3"]);
        assert_eq!(names(&group[1]), ["e4"]);
    }

    #[test]
    fn an_item_not_given_back_fails_the_group_instead_of_settling_it_out_of_place() {
        let mut group = vec![part(0, Vec::new())];
        let all = Opened {
            results: vec![vec![ItemResult::Skipped; 2]],
            items: vec![((0, 0), opened(item(1)))],
            kept: vec![vec![None, None]],
        };
        assert!(matches!(
            all.give_back(&mut group),
            Err(DeliveryError::Store(StoreError::Transient { .. }))
        ));
        // Nor is a message whose items were never taken settled as if empty.
        let mut group = vec![part(0, vec![item(1)]), part(1, vec![item(2)])];
        let short = Opened {
            results: vec![vec![ItemResult::Skipped; 1]],
            items: Vec::new(),
            kept: vec![vec![Some(item(1))]],
        };
        assert!(matches!(
            short.give_back(&mut group),
            Err(DeliveryError::Store(StoreError::Transient { .. }))
        ));
    }
}
