//! Port contract suites. Every adapter runs the same cases: the embedded adapters in
//! `tracklayer-local`, the AWS adapters against moto in `tracklayer-aws`.
//!
//! [`all_contract_suites!`] lists every suite and its cases and expands to one `#[tokio::test]`
//! per case in the backend's test binary, so a backend cannot forget a case and a failure
//! names it: `saml::an_expired_request_id_is_not_taken`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use time::macros::datetime;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{AuditFilter, NewAuditEntry};
use crate::consent::{ConsentPolicy, Decision};
use crate::crypto::{DataKey, Sealed, WorkspaceKeys, WrappedKey};
use crate::deliver::service::{DeliveryService, Disposition};
use crate::destination::{Destination, DestinationId, DestinationKind, EventFilter};
use crate::dsr::{DsrId, DsrKind, DsrRequest, DsrStatus, ErasedRows};
use crate::error::{KeyError, MailError, StoreError};
use crate::event::{DeliveryItem, QueueBody};
use crate::event::{EventId, EventType, MessageId, OperationalRecord, Routing, StoredEvent};
use crate::identity::{Field, Profile};
use crate::ingest::Snapshot;
use crate::keys::{ApiKeyRecord, KeyId, KeyKind, Role};
use crate::ports::{AuditLog, ExportPart, LogOf, Page};
use crate::ports::{
    ControlStore, DeadLetter, DeliveryLog, DeliveryQueue, DeliveryRecord, DeliveryStatus, DsrStore,
    InspectableEventStore, Keyring, Mail, Mailer, NewEvent, Outgoing, Received, ReplayFilter,
};
use crate::workspace::{KeyRef, Region, Retention, User, Workspace, WorkspaceId};

pub mod account_data;
pub mod account_end;
pub mod audit_log;
pub mod control_store;
pub mod delivery_log;
pub mod delivery_log_erasure;
pub mod delivery_log_paging;
pub mod delivery_queue;
pub mod delivery_queue_erasure;
pub mod dsr_store;
pub mod egress;
pub mod event_lookup;
pub mod event_store;
pub mod event_store_erasure;
pub mod ingest_store;
pub mod keyring;
pub mod last_admin;
pub mod mailer;
pub mod recent_events;
pub mod retention;
pub mod saml;
pub mod scim;
pub mod sessions;
pub mod stats;
pub mod users;

pub use delivery_log::delivery_record;
pub use delivery_queue::{queue_body, QueueHarness};
pub use dsr_store::dsr_request;
pub use users::user;

/// A fixed start time for contract cases.
pub const T0: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

/// A unique suffix, so that cases sharing one backend (moto) do not collide.
pub fn unique() -> String {
    Uuid::now_v7().simple().to_string()
}

pub fn workspace(region: Region) -> Workspace {
    Workspace {
        id: WorkspaceId::new(region, &unique()),
        name: "Contract".into(),
        region,
        created_at: T0,
        retention: Retention::default(),
        consent: ConsentPolicy::default(),
        key_ref: KeyRef::Platform,
        data_key: WrappedKey(vec![1, 2, 3]),
        security: Default::default(),
        closed_at: None,
    }
}

/// What ingest reads of a workspace: a US workspace with the default consent policy (US:
/// opt-out), a destination of each of `kinds` with its default purposes, and fixed keys.
pub fn snapshot(kinds: impl IntoIterator<Item = DestinationKind>) -> Snapshot {
    let workspace = workspace(Region::Us);
    let destinations = kinds
        .into_iter()
        .map(|kind| destination(&workspace.id, kind, T0))
        .collect();
    Snapshot {
        workspace,
        destinations,
        keys: WorkspaceKeys::new(&DataKey::from_bytes([7; 32])),
    }
}

/// Delivers `msgs` (one receive of `kind`'s queue) and carries out every disposition on the
/// queue, as the delivery worker does; returns the dispositions. Panics if one does not settle.
pub async fn deliver_and_settle(
    service: &Arc<DeliveryService>,
    kind: DestinationKind,
    msgs: &[Received],
) -> Vec<Disposition> {
    let dispositions = service.process(kind, msgs).await;
    for (m, d) in msgs.iter().zip(&dispositions) {
        service.apply(kind, m, d).await.unwrap();
    }
    dispositions
}

/// A Segment `track` call of an anonymous shopper's `Order Completed` (10 EUR).
pub fn track_call(message_id: &str) -> serde_json::Value {
    json!({
        "type": "track",
        "messageId": message_id,
        "anonymousId": "anon-1",
        "event": "Order Completed",
        "properties": {"value": 10, "currency": "EUR"}
    })
}

pub fn destination(ws: &WorkspaceId, kind: DestinationKind, at: OffsetDateTime) -> Destination {
    Destination {
        id: DestinationId::new(&unique()),
        workspace_id: ws.clone(),
        name: format!("{kind} destination"),
        kind,
        config: json!({"pixel_id": "1"}),
        secrets: Sealed(vec![9; 40]),
        secret_hints: json!({}),
        consent_purposes: kind.default_purposes(),
        events: EventFilter::All,
        endpoint: None,
        paused: false,
        created_at: at,
        updated_at: at,
    }
}

pub fn api_key(ws: &WorkspaceId, kind: KeyKind) -> ApiKeyRecord {
    let u = unique();
    let id = u[u.len() - 16..].to_owned();
    ApiKeyRecord {
        id: KeyId::parse(&id).expect("key id"),
        workspace_id: ws.clone(),
        kind,
        role: (kind != KeyKind::Ingest).then_some(Role::Admin),
        user_id: None,
        name: "contract".into(),
        prefix: format!("tl_{}_us_{id}", kind.as_str()),
        verifier: "$2b$04$abcdefghijklmnopqrstuuVJZ3pZ2d2kG5Y1J4O1Yp3j4bSy8vW6".into(),
        created_at: T0,
        expires_at: T0 + time::Duration::days(90),
        revoked_at: None,
        last_used_at: None,
        expiry_warnings_sent: Vec::new(),
        browser: false,
    }
}

/// An accepted event with subjects and an operational record.
pub fn new_event(
    ws: &WorkspaceId,
    message_id: &str,
    subjects: &[&str],
    at: OffsetDateTime,
) -> NewEvent {
    let event_id = EventId(Uuid::now_v7());
    let mut hashed = BTreeMap::new();
    hashed.insert(
        Profile::Meta,
        BTreeMap::from([(Field::Email, crate::identity::sha256_hex(message_id))]),
    );
    NewEvent {
        event: StoredEvent {
            workspace_id: ws.clone(),
            event_id,
            message_id: MessageId::parse(message_id).expect("message id"),
            event_type: EventType::Track,
            name: Some("Order Completed".into()),
            timestamp: at,
            received_at: at,
            expires_at: at + time::Duration::days(180),
            properties: json!({"value": 10, "currency": "EUR"}),
            traits: json!({}),
            hashed,
            subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
            routing: vec![Routing {
                destination_id: DestinationId::new("contract"),
                kind: DestinationKind::MetaCapi,
                routed: true,
                consent: Decision {
                    allowed: true,
                    reason: "contract".into(),
                },
                skipped: None,
            }],
            invalid_identifiers: 0,
            vendor_ids: None,
        },
        operational: Some(OperationalRecord {
            workspace_id: ws.clone(),
            event_id,
            sealed: Sealed(vec![7; 48]),
            expires_at: at + Retention::operational(),
        }),
        dedup_until: at + Retention::dedup(),
    }
}

/// Every contract suite, one module of tests each, in the calling test binary: one test per
/// case, each on a fresh subject. The backend names one `async` factory per subject
/// (`control_store()`, `event_store()`, `delivery_queue()`, `ingest_stores()`, `delivery_log()`, `audit_log()`,
/// `dsr_store()`, `stats()`, `session_store()`, `keyring()`, `mailer()`, `account_stores()`,
/// `retention_stores()`), so no backend can skip a suite or a case another backend passes.
/// A new case is a `pub async fn` in its suite's module, listed here.
#[macro_export]
macro_rules! all_contract_suites {
    () => {
        $crate::__contract_suites! {
            control_store(control_store()) [
                creates_a_workspace_once_and_reads_it_back,
                updates_a_workspace,
                keeps_a_workspaces_allowed_origins,
                keeps_a_workspaces_bot_filter_on_by_default_and_off_when_turned_off,
                stores_keys_by_id_and_lists_them_per_workspace,
                moves_a_keys_last_use_only_forward,
                keeps_destinations_in_creation_order_and_per_workspace,
                replaces_and_deletes_destinations,
            ],
            users(control_store()) [
                keeps_users_per_workspace_with_unique_emails,
                keeps_a_provisioned_users_external_id_and_active_flag,
            ],
            last_admin(control_store()) [
                two_admins_demoting_each_other_at_once_leave_exactly_one_admin,
                two_admins_removing_each_other_at_once_leave_exactly_one_admin,
                the_last_admin_stays_while_everyone_else_may_change,
            ],
            saml(control_store()) [
                a_saml_connection_is_put_replaced_read_and_deleted_per_workspace,
                the_workspaces_managing_a_domain_are_found_by_it_as_connections_change,
                a_request_id_is_taken_once_and_only_by_the_browser_that_started_it,
                an_expired_request_id_is_not_taken,
                an_assertion_id_is_accepted_once_until_it_expires,
                two_instances_using_one_assertion_at_once_accept_it_exactly_once,
            ],
            scim(control_store()) [
                groups_are_created_listed_oldest_first_replaced_and_deleted_per_workspace,
                more_groups_than_a_read_page_are_all_listed_oldest_first,
                the_group_role_mapping_is_kept_per_workspace,
                a_users_scim_profile_is_kept_with_the_user,
                closing_a_workspace_deletes_its_groups_and_mapping_at_once,
                two_creates_racing_for_one_user_name_leave_exactly_one_user,
                a_user_name_moves_with_a_rename_and_is_freed_by_removal,
                two_users_renamed_to_one_user_name_at_once_leave_exactly_one_with_it,
                a_taken_email_is_an_email_clash_even_when_the_user_name_clashes_too,
            ],
            account_data(control_store()) [
                a_key_record_is_gone_from_reads_90_days_after_the_key_ended,
                closing_revokes_keys_deletes_destinations_and_keeps_the_rest_90_days,
                the_store_stamps_key_records_that_would_outlive_a_closed_account,
                writes_after_the_closure_neither_reopen_nor_extend_it,
            ],
            audit_log(audit_log()) [
                appends_a_gapless_chain_that_verifies,
                concurrent_appends_never_share_a_sequence_number,
                lists_by_actor_action_time_and_page,
                keeps_the_head_with_the_last_entry,
                retires_only_entries_older_than_a_year,
            ],
            event_store(event_store()) [
                records_new_events_and_reads_them_back,
                reads_several_events_at_once_leaving_out_the_missing_the_expired_and_others,
                reads_the_same_events_again_only_while_they_are_stored_unexpired_and_the_workspaces,
                reads_several_operational_records_at_once_leaving_out_the_missing_the_expired_and_others,
                reports_a_repeated_message_id_as_a_duplicate_within_24_hours,
                reports_a_retry_in_the_same_second_as_a_duplicate_alone_or_beside_new_events,
                accepts_a_message_id_again_after_the_dedup_window,
                keeps_workspaces_apart,
                finds_a_subjects_events_in_pages,
                never_returns_expired_data,
                forgets_events_and_their_dedup_markers,
                sweeping_keeps_what_has_not_expired,
            ],
            event_lookup(event_store()) [
                finds_an_event_by_its_message_id_while_its_dedup_marker_lives,
                finds_an_identified_event_by_its_message_id_within_the_dedup_window,
                never_finds_another_workspaces_event_with_the_same_message_id,
                finds_nothing_once_the_dedup_window_is_over,
                a_duplicate_leaves_the_first_event_found,
                a_forgotten_event_is_not_found_by_its_message_id,
            ],
            recent_events(event_store()) [
                lists_the_newest_events_first_up_to_the_limit,
                lists_only_the_type_and_the_name_asked_for,
                lists_nothing_older_than_the_window_expired_or_of_another_workspace,
            ],
            event_store_erasure(event_store()) [
                finds_a_subjects_footprint_across_identifiers_in_pages,
                the_footprint_includes_expired_events,
                erasing_deletes_events_with_their_index_entries_operational_records_and_dedup_markers,
                erasing_leaves_other_workspaces_alone,
            ],
            delivery_queue(delivery_queue()) [
                hides_a_received_message_until_its_visibility_ends,
                forgets_an_acknowledged_message,
                makes_a_message_visible_again_after_retry_later,
                gives_a_held_message_back_once_after_its_delay_with_its_receive_unspent,
                never_dead_letters_a_message_held_more_often_than_its_maximum_receives,
                dead_letters_a_message_after_its_maximum_receives,
                replays_dead_letters_of_one_destination,
                hides_a_delayed_message_until_its_delay_ends,
                puts_refused_parts_straight_into_the_dead_letters,
                replaces_a_received_message_by_its_remainder,
                keeps_each_kind_in_its_own_queue,
            ],
            ingest_store(ingest_stores()) [
                records_the_events_and_queues_the_messages_made_of_them,
                a_repeated_message_id_is_neither_recorded_again_nor_packed,
                when_the_messages_cannot_be_made_nothing_is_kept_and_the_retry_is_recorded,
                an_empty_request_stores_and_queues_nothing,
            ],
            delivery_queue_erasure(delivery_queue()) [
                purges_a_subjects_items_from_the_dead_letters,
            ],
            delivery_log(delivery_log()) [
                answers_which_events_were_delivered_to_a_destination,
                overwrites_a_record_with_its_latest_outcome,
                lists_an_events_records_across_destinations,
                lists_a_destinations_latest_records_first,
                forgets_records_after_30_days,
            ],
            delivery_log_paging(delivery_log()) [
                keeps_the_message_id_and_a_retrys_next_attempt,
                filters_by_the_status_of_each_events_latest_record,
                filters_by_a_time_range_that_includes_both_ends,
                pages_past_1000_records_without_skipping_or_repeating_one,
                pages_through_equal_timestamps_in_a_stable_order,
                a_last_page_that_fills_its_limit_has_no_cursor,
                filters_and_the_cursor_combine,
            ],
            delivery_log_erasure(delivery_log()) [
                lists_and_erases_every_record_of_given_events,
            ],
            dsr_store(dsr_store()) [
                creates_reads_and_updates_a_request,
                lists_a_workspaces_requests_newest_first,
                lists_open_requests_of_every_workspace_until_they_complete,
                keeps_a_suppression_list_per_workspace,
                keeps_export_parts_in_order_until_they_expire,
            ],
            stats(stats()) [
                adds_concurrent_deltas_into_one_bucket_without_losing_any,
                keeps_every_counter_kind_apart,
                reads_the_buckets_of_a_window_oldest_first_from_inclusive_to_exclusive,
                keeps_workspaces_apart,
                does_not_read_a_bucket_once_it_expired,
                an_empty_window_reads_nothing,
            ],
            sessions(session_store()) [
                finds_a_session_by_its_token_hash_only_until_it_ends,
                a_touch_moves_the_idle_end_but_never_past_the_absolute_end,
                a_touch_does_not_bring_back_a_deleted_session,
                lists_a_users_live_sessions_oldest_first,
                deletes_one_session_or_every_session_of_a_user,
                a_session_token_hash_is_taken_once,
                stores_replaces_and_deletes_a_credential,
                a_link_is_redeemed_once_for_its_kind_until_it_expires,
                of_concurrent_redemptions_of_a_link_exactly_one_succeeds,
                counts_failures_per_key_and_window_until_expired_or_cleared,
                concurrent_failures_are_all_counted,
                sweep_leaves_live_records,
            ],
            keyring(keyring()) [
                unwraps_the_data_key_it_generated,
                refuses_a_data_key_wrapped_for_another_workspace,
                wraps_an_existing_data_key_again_for_a_key_switch,
                fails_closed_when_a_customer_key_is_unavailable,
            ],
            mailer(mailer()) [
                sends_a_notification,
                rejects_a_mail_without_recipients,
            ],
            account_end(account_stores()) [
                a_closed_workspaces_requests_and_suppression_list_end_90_days_after_the_closure,
                only_the_closed_workspaces_records_are_stamped,
            ],
            retention(retention_stores()) [
                ip_and_user_agent_are_gone_after_30_days,
                events_are_gone_after_the_default_180_days,
                events_of_a_workspace_keeping_30_days_are_gone_after_30_days,
                dedup_markers_are_gone_after_24_hours,
                delivery_records_are_gone_after_30_days,
                audit_entries_are_gone_after_a_year_and_the_chain_goes_on,
            ],
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __contract_suites {
    ($($module:ident($make:expr) [$($case:ident),* $(,)?],)*) => {
        $(
            $crate::__contract_suites!(@suite $module, $make, [$($case)*]);
        )*
    };
    (@suite $module:ident, $make:expr, [$($case:ident)*]) => {
        mod $module {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let subject = $make.await;
                    $crate::testkit::$module::$case(&subject).await;
                }
            )*
        }
    };
}
