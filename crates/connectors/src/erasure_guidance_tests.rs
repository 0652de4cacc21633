//! Each connector's erasure guidance is, word for word, the receipt text the DSR use case
//! wrote before the guidance moved onto the `Connector` trait.

use tracklayer_core::destination::DestinationKind;
use tracklayer_core::dsr::SentToVendor;

use crate::connector;

const PERIOD: &str = "between 2026-03-01T12:00:00Z and 2026-03-02T12:00:00Z";

fn guidance(kind: DestinationKind, account: Option<&str>) -> String {
    connector(kind).erasure_guidance(&SentToVendor {
        delivered: 3,
        period: PERIOD,
        account,
    })
}

#[test]
fn meta_guidance_names_the_dataset_and_metas_own_deletion_process() {
    assert_eq!(
        guidance(DestinationKind::MetaCapi, Some("1234567890")),
        "Meta's Conversions API has no endpoint to delete events it received, so TrackLayer \
         could not delete them at Meta. Meta received 3 events of the subject between \
         2026-03-01T12:00:00Z and 2026-03-02T12:00:00Z for dataset 1234567890. Submit the \
         deletion through Meta's own process for Business Tools data (Events Manager / Meta's \
         data-subject request channel) and record Meta's answer."
    );
}

#[test]
fn ga4_guidance_names_the_measurement_id_and_the_user_deletion_api() {
    assert_eq!(
        guidance(DestinationKind::Ga4, Some("G-TEST123")),
        "The GA4 Measurement Protocol cannot delete data, so TrackLayer could not delete it at \
         Google. Google Analytics received 3 events of the subject between \
         2026-03-01T12:00:00Z and 2026-03-02T12:00:00Z for G-TEST123. Delete the user there \
         with the GA4 User Deletion API or Admin > Data deletion requests, using the subject's \
         user id or client id."
    );
}

#[test]
fn tiktok_guidance_names_the_pixel_and_tiktoks_request_channel() {
    assert_eq!(
        guidance(DestinationKind::Tiktok, Some("CPIXEL")),
        "TikTok's Events API has no endpoint to delete events it received, so TrackLayer \
         could not delete them at TikTok. TikTok received 3 events of the subject between \
         2026-03-01T12:00:00Z and 2026-03-02T12:00:00Z for pixel CPIXEL. Request the deletion \
         through TikTok for Business (privacy / data-subject request channel) and record \
         TikTok's answer."
    );
}

#[test]
fn webhook_guidance_asks_to_delete_in_the_receiving_system() {
    assert_eq!(
        guidance(DestinationKind::Webhook, None),
        "TrackLayer sends webhooks events, not erasure notices. Your webhook receiver got 3 \
         events of the subject between 2026-03-01T12:00:00Z and 2026-03-02T12:00:00Z, carrying \
         the subject's hashed identifiers and event ids; delete them in the receiving system."
    );
}

#[test]
fn a_deleted_destinations_account_reads_destination_deleted() {
    assert!(
        guidance(DestinationKind::MetaCapi, None).contains("for dataset (destination deleted).")
    );
}
