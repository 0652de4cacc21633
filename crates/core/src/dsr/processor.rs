//! Processing in resumable pages: the run over open requests, a request's phases, reading
//! a page of the subject's events and erasing it.

use std::collections::{BTreeMap, BTreeSet};

use time::Duration;

use super::service::{DsrService, RunReport};
use super::{
    Downstream, DsrKind, DsrRequest, DsrStatus, EventFootprint, PagePlan, Phase, SentClientIds,
    StoreCounts, VendorIds,
};
use crate::admin::AdminError;
use crate::crypto::Sealed;
use crate::destination::{DestinationId, DestinationKind};
use crate::event::EventId;
use crate::ports::{DeliveryRecord, DeliveryStatus, Page};

impl DsrService {
    /// Processes open requests in bounded pages; resumable at any point.
    pub async fn run(&self) -> RunReport {
        let mut report = RunReport::default();
        let open = match self
            .ports
            .dsr
            .open_requests(self.config.requests_per_run)
            .await
        {
            Ok(open) => open,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list open data-subject requests");
                report.failed += 1;
                return report;
            }
        };
        report.requests = open.len();
        let mut budget = self.config.max_pages_per_run;
        for request in open {
            let id = request.id.clone();
            let ws = request.workspace_id.clone();
            let kind = request.kind;
            match self.process(request, &mut budget, &mut report).await {
                Ok(true) => {
                    report.completed.push(id);
                    if kind == DsrKind::Erasure {
                        report.erasures_completed += 1;
                    }
                }
                Ok(false) => report.more = true,
                Err(e) => {
                    tracing::warn!(workspace = %ws, request = %id, error = %e, "data-subject request failed; retried next run");
                    report.failed += 1;
                    report.more = true;
                }
            }
        }
        report
    }

    /// Advances one request; `true` once it completed.
    pub(super) async fn process(
        &self,
        mut r: DsrRequest,
        budget: &mut u32,
        report: &mut RunReport,
    ) -> Result<bool, AdminError> {
        let now = self.now();
        if !r.reminder_sent && now >= r.due_at - Duration::days(DsrRequest::REMIND_DAYS) {
            self.remind(&r).await;
            r.reminder_sent = true;
            report.reminders += 1;
            self.save(&mut r).await?;
        }
        loop {
            match r.progress.phase {
                Phase::Start => {
                    r.status = DsrStatus::Processing;
                    r.progress.started_at = Some(now);
                    if r.kind == DsrKind::Erasure {
                        // Suppressed at submission; requests stored before that was so are
                        // suppressed now.
                        if r.progress.suppressed_at.is_none() {
                            self.suppress(&r, now).await?;
                            r.progress.suppressed_at = Some(now);
                        }
                        r.progress.phase = Phase::Suppressed;
                    } else {
                        r.progress.phase = Phase::Pages;
                    }
                    self.save(&mut r).await?;
                }
                Phase::Suppressed => {
                    let since = r.progress.suppressed_at.unwrap_or(now);
                    if now < since + self.config.suppression_propagation {
                        return Ok(false);
                    }
                    r.progress.phase = Phase::Pages;
                    self.save(&mut r).await?;
                }
                Phase::Pages => {
                    if *budget == 0 {
                        return Ok(false);
                    }
                    *budget -= 1;
                    report.pages += 1;
                    match r.kind {
                        DsrKind::Erasure => self.erasure_page(&mut r).await?,
                        DsrKind::Access => self.access_page(&mut r).await?,
                    }
                }
                Phase::Finish => {
                    self.finish(&mut r).await?;
                    return Ok(true);
                }
            }
        }
    }

    /// Reads the next page of the subject's events (or `None` when there is none).
    pub(super) async fn read_page(
        &self,
        r: &DsrRequest,
    ) -> Result<Option<(Vec<EventFootprint>, PagePlan)>, AdminError> {
        let found = self
            .ports
            .events
            .subject_footprint(
                &r.workspace_id,
                &r.subjects,
                Page {
                    after: r.progress.cursor,
                    limit: self.config.page_size,
                },
                self.now(),
            )
            .await?;
        if found.is_empty() {
            return Ok(None);
        }
        let ids: Vec<EventId> = found.iter().map(|f| f.event.event_id).collect();
        let records = self
            .ports
            .delivery_log
            .for_events(&r.workspace_id, &ids)
            .await?;
        let mut counts = StoreCounts {
            events: found.len() as u64,
            delivery_log_entries: records.len() as u64,
            ..Default::default()
        };
        let mut downstream: BTreeMap<DestinationId, Downstream> = BTreeMap::new();
        for f in &found {
            counts.subject_index_entries += u64::from(f.subject_index_entries);
            counts.operational_records += u64::from(f.operational);
            counts.dedup_markers += u64::from(f.dedup_marker);
            for routing in f.event.routing.iter().filter(|r| r.routed) {
                let d = downstream
                    .entry(routing.destination_id.clone())
                    .or_default();
                d.kind = Some(routing.kind);
                d.routed += 1;
            }
        }
        for rec in records
            .iter()
            .filter(|r| r.status == DeliveryStatus::Delivered)
        {
            let d = downstream.entry(rec.destination_id.clone()).or_default();
            d.merge(&Downstream {
                kind: None,
                routed: 0,
                delivered: 1,
                first_delivered_at: Some(rec.updated_at),
                last_delivered_at: Some(rec.updated_at),
            });
        }
        let client_ids = self
            .sent_client_ids(r, &found, &records, &downstream)
            .await?;
        Ok(Some((
            found,
            PagePlan {
                events: ids,
                counts,
                downstream,
                client_ids,
            },
        )))
    }

    /// Erasure: the GA4 client ids found so far plus those of this page's events that a GA4
    /// destination accepted (as ingest sealed them with the events, [`VendorIds`]; only
    /// these events', never another subject's), sealed for the request. They must be read
    /// now: the page's events are deleted next. The workspace key is unwrapped only for a
    /// page that has any.
    async fn sent_client_ids(
        &self,
        r: &DsrRequest,
        found: &[EventFootprint],
        records: &[DeliveryRecord],
        downstream: &BTreeMap<DestinationId, Downstream>,
    ) -> Result<Option<Sealed>, AdminError> {
        let so_far = r.progress.client_ids.clone();
        if r.kind != DsrKind::Erasure || found.iter().all(|f| f.event.vendor_ids.is_none()) {
            return Ok(so_far);
        }
        let ws = self.workspace(&r.workspace_id).await?;
        let keys = self.keys(&ws).await?;
        let mut page = SentClientIds::default();
        for rec in records
            .iter()
            .filter(|r| r.status == DeliveryStatus::Delivered)
        {
            let to_ga4 = downstream.get(&rec.destination_id).and_then(|d| d.kind)
                == Some(DestinationKind::Ga4);
            let event = found.iter().find(|f| f.event.event_id == rec.event_id);
            let (true, Some(event)) = (to_ga4, event) else {
                continue;
            };
            if let Some(id) = VendorIds::open(&event.event, &keys)?.ga4_client_id {
                page.0
                    .entry(rec.destination_id.clone())
                    .or_default()
                    .insert(id);
            }
        }
        if page.is_empty() {
            return Ok(so_far);
        }
        let mut all = SentClientIds::open(so_far.as_ref(), &keys, r)?;
        all.merge(page);
        let mut nonce = [0u8; 12];
        self.ports.ids.fill(&mut nonce);
        Ok(all.seal(&keys, nonce, r))
    }

    pub(super) async fn erasure_page(&self, r: &mut DsrRequest) -> Result<(), AdminError> {
        let plan = match r.progress.page.clone() {
            // A run stopped inside this page: its counts are persisted, finish its deletions.
            Some(plan) => plan,
            None => match self.read_page(r).await? {
                None => {
                    r.progress.phase = Phase::Finish;
                    return self.save(r).await;
                }
                Some((_, plan)) => {
                    r.progress.page = Some(plan.clone());
                    self.save(r).await?;
                    plan
                }
            },
        };
        let ws = r.workspace_id.clone();
        let kinds: BTreeSet<DestinationKind> =
            plan.downstream.values().filter_map(|d| d.kind).collect();
        let mut queue_items = 0;
        for kind in kinds {
            queue_items += self
                .ports
                .queue
                .purge_events(kind, &ws, &plan.events)
                .await?;
        }
        self.ports
            .delivery_log
            .erase_events(&ws, &plan.events)
            .await?;
        self.ports.events.erase(&ws, &plan.events).await?;
        let mut counts = plan.counts;
        counts.queue_items = queue_items;
        self.fold(r, &plan, counts);
        self.save(r).await
    }

    pub(super) fn fold(&self, r: &mut DsrRequest, plan: &PagePlan, counts: StoreCounts) {
        r.progress.counts.add(&counts);
        for (id, d) in &plan.downstream {
            r.progress
                .downstream
                .entry(id.clone())
                .or_default()
                .merge(d);
        }
        if plan.client_ids.is_some() {
            r.progress.client_ids = plan.client_ids.clone();
        }
        r.progress.cursor = plan.events.last().copied();
        r.progress.pages += 1;
        r.progress.page = None;
    }
}
