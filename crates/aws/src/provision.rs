//! Creates the stack's tables and queues as `template.yaml` defines them: for the tests
//! against moto (fresh, uniquely named resources per test) and for setting up a stack
//! without CloudFormation. A unit test holds these definitions to the template's.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, Projection, ProjectionType, ScalarAttributeType,
    SseSpecification, SseType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use tracklayer_core::destination::DestinationKind;

use crate::config::{QueueUrls, TableNames};
use crate::dynamo::EXPIRES_AT;

/// A global secondary index of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gsi {
    pub name: &'static str,
    pub hash: &'static str,
    pub range: &'static str,
    pub keys_only: bool,
}

/// A table as the template declares it: `pk`/`sk` strings, GSIs, on demand, TTL on
/// `expires_at`, point-in-time recovery for `pitr_days`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub name: String,
    pub gsis: Vec<Gsi>,
    pub pitr_days: i32,
}

/// The four tables of a stack.
pub fn table_specs(names: &TableNames) -> [TableSpec; 4] {
    [
        TableSpec {
            name: names.control.clone(),
            gsis: vec![Gsi {
                name: "gsi1",
                hash: "gsi1pk",
                range: "gsi1sk",
                keys_only: false,
            }],
            pitr_days: 35,
        },
        TableSpec {
            name: names.events.clone(),
            // Subject-days written before 2026-12-08 only (template.yaml says when it goes).
            gsis: vec![Gsi {
                name: "subject",
                hash: "subject_pk",
                range: "subject_sk",
                keys_only: true,
            }],
            pitr_days: 7,
        },
        TableSpec {
            name: names.delivery_log.clone(),
            gsis: Vec::new(),
            pitr_days: 7,
        },
        TableSpec {
            name: names.audit.clone(),
            gsis: Vec::new(),
            pitr_days: 35,
        },
    ]
}

/// Choices that differ between a real stack and a test.
#[derive(Debug, Clone)]
pub struct Options {
    /// The KMS key of the tables' server-side encryption (the platform key); `None` for
    /// DynamoDB's own key.
    pub sse_kms_key: Option<String>,
    pub deletion_protection: bool,
    /// The queues' redrive limit (the template's `MaxReceiveCount`, default 8).
    pub max_receive_count: u32,
}

impl Default for Options {
    /// The template's defaults.
    fn default() -> Self {
        Self {
            sse_kms_key: None,
            deletion_protection: true,
            max_receive_count: 8,
        }
    }
}

/// Creating a resource failed.
#[derive(Debug, thiserror::Error)]
#[error("could not {step}")]
pub struct ProvisionError {
    pub step: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

fn failed(step: impl Into<String>) -> impl FnOnce(ProvisionErrorSource) -> ProvisionError {
    let step = step.into();
    move |source| ProvisionError { step, source }
}

type ProvisionErrorSource = Box<dyn std::error::Error + Send + Sync>;

fn boxed<E: std::error::Error + Send + Sync + 'static>(e: E) -> ProvisionErrorSource {
    Box::new(e)
}

fn key_schema(hash: &str, range: &str) -> Result<Vec<KeySchemaElement>, ProvisionErrorSource> {
    Ok(vec![
        KeySchemaElement::builder()
            .attribute_name(hash)
            .key_type(KeyType::Hash)
            .build()
            .map_err(boxed)?,
        KeySchemaElement::builder()
            .attribute_name(range)
            .key_type(KeyType::Range)
            .build()
            .map_err(boxed)?,
    ])
}

fn string_attribute(name: &str) -> Result<AttributeDefinition, ProvisionErrorSource> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(boxed)
}

/// Creates one table, waits until it is active, then turns on TTL and point-in-time
/// recovery.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    spec: &TableSpec,
    options: &Options,
) -> Result<(), ProvisionError> {
    let step = format!("create table {}", spec.name);
    let mut attributes = vec![
        string_attribute("pk").map_err(failed(&step))?,
        string_attribute("sk").map_err(failed(&step))?,
    ];
    let mut gsis = Vec::new();
    for g in &spec.gsis {
        attributes.push(string_attribute(g.hash).map_err(failed(&step))?);
        attributes.push(string_attribute(g.range).map_err(failed(&step))?);
        let projection = Projection::builder()
            .projection_type(if g.keys_only {
                ProjectionType::KeysOnly
            } else {
                ProjectionType::All
            })
            .build();
        gsis.push(
            GlobalSecondaryIndex::builder()
                .index_name(g.name)
                .set_key_schema(Some(key_schema(g.hash, g.range).map_err(failed(&step))?))
                .projection(projection)
                .build()
                .map_err(|e| failed(&step)(boxed(e)))?,
        );
    }
    let sse = SseSpecification::builder().enabled(true);
    let sse = match &options.sse_kms_key {
        Some(key) => sse.sse_type(SseType::Kms).kms_master_key_id(key),
        None => sse,
    };
    client
        .create_table()
        .table_name(&spec.name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(key_schema("pk", "sk").map_err(failed(&step))?))
        .set_global_secondary_indexes((!gsis.is_empty()).then_some(gsis))
        .sse_specification(sse.build())
        .deletion_protection_enabled(options.deletion_protection)
        .send()
        .await
        .map_err(|e| failed(&step)(boxed(e)))?;
    client
        .wait_until_table_exists()
        .table_name(&spec.name)
        .wait(Duration::from_secs(300))
        .await
        .map_err(|e| failed(format!("wait for table {}", spec.name))(boxed(e)))?;
    client
        .update_time_to_live()
        .table_name(&spec.name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(EXPIRES_AT)
                .enabled(true)
                .build()
                .map_err(|e| failed(format!("set TTL on {}", spec.name))(boxed(e)))?,
        )
        .send()
        .await
        .map_err(|e| failed(format!("set TTL on {}", spec.name))(boxed(e)))?;
    client
        .update_continuous_backups()
        .table_name(&spec.name)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .recovery_period_in_days(spec.pitr_days)
                .build()
                .map_err(|e| failed(format!("set PITR on {}", spec.name))(boxed(e)))?,
        )
        .send()
        .await
        .map_err(|e| failed(format!("set PITR on {}", spec.name))(boxed(e)))?;
    Ok(())
}

/// Creates the four tables.
pub async fn create_tables(
    client: &aws_sdk_dynamodb::Client,
    names: &TableNames,
    options: &Options,
) -> Result<(), ProvisionError> {
    for spec in table_specs(names) {
        create_table(client, &spec, options).await?;
    }
    Ok(())
}

/// The queue name of a kind: `{prefix}-meta-capi`, its DLQ `{prefix}-meta-capi-dlq`.
pub fn queue_name(prefix: &str, kind: DestinationKind) -> String {
    format!("{prefix}-{}", kind.as_str().replace('_', "-"))
}

/// Creates the queue and DLQ of one destination kind: the DLQ keeps messages 14 days, the
/// queue 4 days with a 360 s visibility timeout and redrive after `max_receive_count`.
pub async fn create_queue(
    client: &aws_sdk_sqs::Client,
    prefix: &str,
    kind: DestinationKind,
    options: &Options,
) -> Result<QueueUrls, ProvisionError> {
    let name = queue_name(prefix, kind);
    let dlq_name = format!("{name}-dlq");
    let step = format!("create queue {dlq_name}");
    let dlq = client
        .create_queue()
        .queue_name(&dlq_name)
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .attributes(QueueAttributeName::SqsManagedSseEnabled, "true")
        .send()
        .await
        .map_err(|e| failed(&step)(boxed(e)))?
        .queue_url
        .ok_or_else(|| failed(&step)("no queue URL in the answer".into()))?;
    let arn = client
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| failed(&step)(boxed(e)))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| failed(&step)("no queue ARN in the answer".into()))?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": arn,
        "maxReceiveCount": options.max_receive_count,
    });
    let step = format!("create queue {name}");
    let queue = client
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::VisibilityTimeout, "360")
        .attributes(QueueAttributeName::MessageRetentionPeriod, "345600")
        .attributes(QueueAttributeName::SqsManagedSseEnabled, "true")
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(|e| failed(&step)(boxed(e)))?
        .queue_url
        .ok_or_else(|| failed(&step)("no queue URL in the answer".into()))?;
    Ok(QueueUrls { queue, dlq })
}

/// Creates a queue and DLQ for every destination kind.
pub async fn create_queues(
    client: &aws_sdk_sqs::Client,
    prefix: &str,
    options: &Options,
) -> Result<BTreeMap<DestinationKind, QueueUrls>, ProvisionError> {
    let mut out = BTreeMap::new();
    for kind in DestinationKind::ALL {
        out.insert(kind, create_queue(client, prefix, kind, options).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../../template.yaml");

    /// The text of one resource of the template, up to the next resource or section.
    fn resource(name: &str) -> &'static str {
        let start = TEMPLATE
            .find(&format!("\n  {name}:\n"))
            .unwrap_or_else(|| panic!("{name} is not in template.yaml"))
            + 1;
        let body = &TEMPLATE[start..];
        let mut offset = 0;
        for (i, line) in body.split_inclusive('\n').enumerate() {
            let next_resource = line.starts_with("  ")
                && line.as_bytes().get(2).is_some_and(u8::is_ascii_alphabetic);
            let next_section = line.as_bytes().first().is_some_and(u8::is_ascii_alphabetic);
            if i > 0 && (next_resource || next_section) {
                return &body[..offset];
            }
            offset += line.len();
        }
        body
    }

    #[test]
    fn the_tables_are_the_templates() {
        let names = TableNames {
            control: "ControlTable".into(),
            events: "EventsTable".into(),
            delivery_log: "DeliveryLogTable".into(),
            audit: "AuditTable".into(),
        };
        for spec in table_specs(&names) {
            let text = resource(&spec.name);
            assert!(
                text.contains("BillingMode: PAY_PER_REQUEST"),
                "{}",
                spec.name
            );
            assert!(text.contains("AttributeName: expires_at"), "{}", spec.name);
            assert!(
                text.contains(&format!("RecoveryPeriodInDays: {}", spec.pitr_days)),
                "{}",
                spec.name
            );
            for key in ["pk", "sk"] {
                assert!(text.contains(&format!("AttributeName: {key}, KeyType")));
            }
            assert_eq!(
                text.matches("IndexName:").count(),
                spec.gsis.len(),
                "{}",
                spec.name
            );
            for g in &spec.gsis {
                assert!(
                    text.contains(&format!("IndexName: {}", g.name)),
                    "{}",
                    g.name
                );
                assert!(text.contains(&format!("AttributeName: {}, KeyType: HASH", g.hash)));
                assert!(text.contains(&format!("AttributeName: {}, KeyType: RANGE", g.range)));
                let projection = if g.keys_only { "KEYS_ONLY" } else { "ALL" };
                assert!(
                    text.contains(&format!("ProjectionType: {projection}")),
                    "{}",
                    g.name
                );
            }
        }
    }

    #[test]
    fn the_queues_are_the_templates() {
        for (queue, dlq) in [
            ("MetaCapiQueue", "MetaCapiDlq"),
            ("Ga4Queue", "Ga4Dlq"),
            ("TiktokQueue", "TiktokDlq"),
            ("WebhookQueue", "WebhookDlq"),
        ] {
            let q = resource(queue);
            assert!(q.contains("VisibilityTimeout: 360"), "{queue}");
            assert!(q.contains("MessageRetentionPeriod: 345600"), "{queue}");
            assert!(q.contains(&format!("deadLetterTargetArn: !GetAtt {dlq}.Arn")));
            assert!(q.contains("maxReceiveCount: !Ref MaxReceiveCount"));
            let d = resource(dlq);
            assert!(d.contains("MessageRetentionPeriod: 1209600"), "{dlq}");
            assert!(d.contains("SqsManagedSseEnabled: true"), "{dlq}");
        }
        assert!(TEMPLATE.contains("  MaxReceiveCount:\n    Type: Number\n    Default: 8"));
        assert_eq!(Options::default().max_receive_count, 8);
    }

    #[test]
    fn queue_names_follow_the_kind() {
        assert_eq!(queue_name("t1", DestinationKind::MetaCapi), "t1-meta-capi");
    }
}
