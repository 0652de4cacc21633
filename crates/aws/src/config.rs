//! The typed configuration of the AWS adapters, read once at cold start from the environment
//! the SAM template sets (`template.yaml`, `Globals.Function.Environment`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use tracklayer_core::destination::DestinationKind;
use tracklayer_core::workspace::Region;

/// Table names of one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub control: String,
    pub events: String,
    pub delivery_log: String,
    pub audit: String,
}

/// The queue of one destination kind and its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    pub queue: String,
    pub dlq: String,
}

/// The public base URL of each residency's API, for the 421 answers that send a request to
/// the other residency (`TRACKLAYER_PUBLIC_URL_US`, `TRACKLAYER_PUBLIC_URL_EU`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrls {
    pub us: String,
    pub eu: String,
}

/// Everything the adapters need to find their resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    /// The stack's residency region (`TRACKLAYER_REGION_CODE`).
    pub residency: Region,
    /// The AWS region of the stack's resources (`AWS_REGION`, which Lambda sets; else the
    /// residency's home region).
    pub aws_region: String,
    /// Another endpoint for every service (moto in tests): `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    pub tables: TableNames,
    /// One queue + DLQ per destination kind (`QUEUE_URL_<KIND>`, `DLQ_URL_<KIND>`).
    pub queues: BTreeMap<DestinationKind, QueueUrls>,
    /// The platform key that wraps data keys of workspaces without BYOK.
    pub kms_key_id: String,
    /// From address of notification mail.
    pub ses_sender: String,
    pub public_urls: PublicUrls,
    /// Let destinations reach loopback and private addresses
    /// (`TRACKLAYER_ALLOW_PRIVATE_EGRESS=true`): tests only; the template never sets it.
    pub allow_private_egress: bool,
    /// How long an unwrapped data key stays in memory (at most 5 minutes).
    pub data_key_cache: Duration,
}

/// The longest a plaintext data key may stay in memory (DESIGN.md § Cost, issue 5).
pub const MAX_DATA_KEY_CACHE: Duration = Duration::from_secs(300);

/// What is wrong with the environment: every problem at once, so one cold start shows all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid AWS configuration: {}", self.problems.join("; "))
    }
}

impl std::error::Error for ConfigError {}

/// The names `template.yaml` gives a stack's resources, derived from the stack name, so that
/// an operator command (`tracklayer --backend aws init`) finds them without CloudFormation:
/// tables `{stack}-control`, `{stack}-events`, `{stack}-delivery-log`, `{stack}-audit`.
pub fn stack_table_names(stack: &str) -> TableNames {
    TableNames {
        control: format!("{stack}-control"),
        events: format!("{stack}-events"),
        delivery_log: format!("{stack}-delivery-log"),
        audit: format!("{stack}-audit"),
    }
}

/// The alias of a stack's platform KMS key: `alias/tracklayer/{stack}`.
pub fn stack_key_alias(stack: &str) -> String {
    format!("alias/tracklayer/{stack}")
}

/// The default stack name of a residency, as `samconfig.toml` deploys it: `tracklayer-eu`.
pub fn default_stack_name(residency: Region) -> String {
    format!("tracklayer-{residency}")
}

/// The residency whose stacks may live in an AWS region (`template.yaml`'s rule
/// `ResidencyMatchesRegion`), if any.
pub fn residency_of_aws_region(aws_region: &str) -> Option<Region> {
    match aws_region {
        "us-east-1" | "us-east-2" | "us-west-2" => Some(Region::Us),
        "eu-central-1" | "eu-west-1" | "eu-west-3" | "eu-north-1" => Some(Region::Eu),
        _ => None,
    }
}

/// The environment variable suffix of a destination kind: `QUEUE_URL_META_CAPI`.
pub fn kind_suffix(kind: DestinationKind) -> String {
    kind.as_str().to_ascii_uppercase()
}

impl AwsConfig {
    /// Reads and validates the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads and validates variables from `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut required = |name: &str| -> String {
            match lookup(name).map(|v| v.trim().to_owned()) {
                Some(v) if !v.is_empty() => v,
                _ => {
                    problems.push(format!("{name} is not set"));
                    String::new()
                }
            }
        };
        let region_code = required("TRACKLAYER_REGION_CODE");
        let tables = TableNames {
            control: required("TRACKLAYER_CONTROL_TABLE"),
            events: required("TRACKLAYER_EVENTS_TABLE"),
            delivery_log: required("TRACKLAYER_DELIVERY_LOG_TABLE"),
            audit: required("TRACKLAYER_AUDIT_TABLE"),
        };
        let mut raw_queues = Vec::new();
        for kind in DestinationKind::ALL {
            let suffix = kind_suffix(kind);
            let queue_var = format!("QUEUE_URL_{suffix}");
            let dlq_var = format!("DLQ_URL_{suffix}");
            let urls = QueueUrls {
                queue: required(&queue_var),
                dlq: required(&dlq_var),
            };
            raw_queues.push((kind, queue_var, dlq_var, urls));
        }
        let kms_key_id = required("TRACKLAYER_KMS_KEY_ARN");
        let ses_sender = required("TRACKLAYER_SES_SENDER");
        let public_urls = PublicUrls {
            us: required("TRACKLAYER_PUBLIC_URL_US"),
            eu: required("TRACKLAYER_PUBLIC_URL_EU"),
        };

        let residency = match region_code.parse::<Region>() {
            Ok(r) => Some(r),
            Err(_) if region_code.is_empty() => None,
            Err(_) => {
                problems.push(format!(
                    "TRACKLAYER_REGION_CODE must be \"us\" or \"eu\", not {region_code:?}"
                ));
                None
            }
        };
        let mut queues = BTreeMap::new();
        for (kind, queue_var, dlq_var, urls) in raw_queues {
            for (var, url) in [(&queue_var, &urls.queue), (&dlq_var, &urls.dlq)] {
                if !url.is_empty() && !is_http_url(url) {
                    problems.push(format!("{var} is not an http(s) URL"));
                }
            }
            queues.insert(kind, urls);
        }
        for (var, url) in [
            ("TRACKLAYER_PUBLIC_URL_US", &public_urls.us),
            ("TRACKLAYER_PUBLIC_URL_EU", &public_urls.eu),
        ] {
            if !url.is_empty() && !is_http_url(url) {
                problems.push(format!("{var} is not an http(s) URL"));
            }
        }
        if !ses_sender.is_empty() && !looks_like_address(&ses_sender) {
            problems.push("TRACKLAYER_SES_SENDER is not an email address".to_owned());
        }
        let allow_private_egress = match lookup("TRACKLAYER_ALLOW_PRIVATE_EGRESS")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("" | "false" | "0") => false,
            Some("true" | "1") => true,
            Some(_) => {
                problems.push("TRACKLAYER_ALLOW_PRIVATE_EGRESS must be true or false".to_owned());
                false
            }
        };
        let endpoint_url = lookup("AWS_ENDPOINT_URL").filter(|v| !v.trim().is_empty());
        if let Some(url) = &endpoint_url {
            if !is_http_url(url) {
                problems.push("AWS_ENDPOINT_URL is not an http(s) URL".to_owned());
            }
        }
        match residency {
            Some(residency) if problems.is_empty() => Ok(Self {
                residency,
                aws_region: lookup("AWS_REGION")
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or_else(|| residency.aws_region().to_owned()),
                endpoint_url,
                tables,
                queues,
                kms_key_id,
                ses_sender,
                public_urls,
                allow_private_egress,
                data_key_cache: MAX_DATA_KEY_CACHE,
            }),
            _ => Err(ConfigError { problems }),
        }
    }

    /// The queue and DLQ of a destination kind.
    pub fn queue(&self, kind: DestinationKind) -> &QueueUrls {
        self.queues
            .get(&kind)
            .expect("a validated config has a queue for every kind")
    }
}

fn is_http_url(s: &str) -> bool {
    (s.starts_with("https://") || s.starts_with("http://")) && s.len() > "http://".len()
}

fn looks_like_address(s: &str) -> bool {
    // The sender may be `Name <addr@example.com>`; only a rough check, SES validates.
    s.contains('@') && !s.contains(['\r', '\n'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn template_env() -> HashMap<String, String> {
        let mut env = HashMap::new();
        env.insert("TRACKLAYER_REGION_CODE".into(), "eu".into());
        env.insert("TRACKLAYER_CONTROL_TABLE".into(), "ctl".into());
        env.insert("TRACKLAYER_EVENTS_TABLE".into(), "ev".into());
        env.insert("TRACKLAYER_DELIVERY_LOG_TABLE".into(), "dl".into());
        env.insert("TRACKLAYER_AUDIT_TABLE".into(), "au".into());
        for kind in DestinationKind::ALL.map(kind_suffix) {
            env.insert(
                format!("QUEUE_URL_{kind}"),
                format!("https://sqs.eu-central-1.amazonaws.com/1/{kind}"),
            );
            env.insert(
                format!("DLQ_URL_{kind}"),
                format!("https://sqs.eu-central-1.amazonaws.com/1/{kind}-dlq"),
            );
        }
        env.insert(
            "TRACKLAYER_KMS_KEY_ARN".into(),
            "arn:aws:kms:eu-central-1:1:key/k".into(),
        );
        env.insert("TRACKLAYER_SES_SENDER".into(), "noreply@example.com".into());
        env.insert(
            "TRACKLAYER_PUBLIC_URL_US".into(),
            "https://us.api.example.com".into(),
        );
        env.insert(
            "TRACKLAYER_PUBLIC_URL_EU".into(),
            "https://eu.api.example.com".into(),
        );
        env
    }

    #[test]
    fn reads_every_variable_the_template_sets() {
        let env = template_env();
        let c = AwsConfig::from_lookup(|k| env.get(k).cloned()).unwrap();
        assert_eq!(c.residency, Region::Eu);
        assert_eq!(c.aws_region, "eu-central-1");
        assert_eq!(c.tables.events, "ev");
        assert!(c.queue(DestinationKind::Tiktok).dlq.ends_with("TIKTOK-dlq"));
        assert_eq!(c.data_key_cache, MAX_DATA_KEY_CACHE);
        assert_eq!(c.endpoint_url, None);
        assert_eq!(c.public_urls.eu, "https://eu.api.example.com");
        assert!(!c.allow_private_egress, "private egress is opt-in");
    }

    #[test]
    fn private_egress_is_allowed_only_when_asked_for() {
        let mut env = template_env();
        env.insert("TRACKLAYER_ALLOW_PRIVATE_EGRESS".into(), "true".into());
        let c = AwsConfig::from_lookup(|k| env.get(k).cloned()).unwrap();
        assert!(c.allow_private_egress);
        env.insert("TRACKLAYER_ALLOW_PRIVATE_EGRESS".into(), "yes".into());
        let err = AwsConfig::from_lookup(|k| env.get(k).cloned()).unwrap_err();
        assert_eq!(
            err.problems,
            ["TRACKLAYER_ALLOW_PRIVATE_EGRESS must be true or false"]
        );
    }

    #[test]
    fn the_variable_names_are_the_templates() {
        let template = include_str!("../../../template.yaml");
        let env = template_env();
        for name in env.keys() {
            assert!(
                template.contains(&format!("        {name}: ")),
                "{name} is not set in template.yaml Globals"
            );
        }
    }

    #[test]
    fn the_template_names_resources_after_the_stack() {
        let template = include_str!("../../../template.yaml");
        let names = stack_table_names("${AWS::StackName}");
        for (table, name) in [
            ("ControlTable", &names.control),
            ("EventsTable", &names.events),
            ("DeliveryLogTable", &names.delivery_log),
            ("AuditTable", &names.audit),
        ] {
            let declared = format!("\n  {table}:\n    Type: AWS::DynamoDB::Table\n");
            let at = template.find(&declared).expect("the table is declared") + declared.len();
            // The resource runs until the next line indented by two spaces only.
            let end = template[at..]
                .match_indices("\n  ")
                .find(|(i, _)| template[at + i + 3..].starts_with(|c: char| c != ' '))
                .map_or(template.len(), |(i, _)| at + i);
            assert!(
                template[at..end].contains(&format!("\n      TableName: !Sub {name}\n")),
                "{table} is not named {name} in template.yaml"
            );
        }
        for kind in DestinationKind::ALL {
            let name = crate::provision::queue_name("${AWS::StackName}", kind);
            for q in [name.clone(), format!("{name}-dlq")] {
                assert!(
                    template.contains(&format!("QueueName: !Sub {q}\n")),
                    "no queue named {q} in template.yaml"
                );
            }
        }
        assert!(template.contains(&format!(
            "AliasName: !Sub {}\n",
            stack_key_alias("${AWS::StackName}")
        )));
    }

    #[test]
    fn a_stack_is_found_by_its_name_and_its_region() {
        assert_eq!(
            stack_table_names("tracklayer-eu").delivery_log,
            "tracklayer-eu-delivery-log"
        );
        assert_eq!(
            stack_key_alias("tracklayer-eu"),
            "alias/tracklayer/tracklayer-eu"
        );
        assert_eq!(default_stack_name(Region::Us), "tracklayer-us");
        assert_eq!(residency_of_aws_region("eu-central-1"), Some(Region::Eu));
        assert_eq!(residency_of_aws_region("us-west-2"), Some(Region::Us));
        assert_eq!(residency_of_aws_region("ap-south-1"), None);
    }

    #[test]
    fn names_every_missing_or_malformed_variable_at_once() {
        let mut env = template_env();
        env.remove("TRACKLAYER_AUDIT_TABLE");
        env.insert("QUEUE_URL_GA4".into(), "ga4".into());
        env.insert("TRACKLAYER_REGION_CODE".into(), "mars".into());
        let err = AwsConfig::from_lookup(|k| env.get(k).cloned()).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("TRACKLAYER_AUDIT_TABLE is not set"),
            "{shown}"
        );
        assert!(
            shown.contains("QUEUE_URL_GA4 is not an http(s) URL"),
            "{shown}"
        );
        assert!(shown.contains("TRACKLAYER_REGION_CODE must be"), "{shown}");
        assert_eq!(err.problems.len(), 3);
    }

    #[test]
    fn takes_the_aws_region_and_endpoint_from_the_sdk_variables() {
        let mut env = template_env();
        env.insert("AWS_REGION".into(), "eu-west-1".into());
        env.insert("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:5000".into());
        let c = AwsConfig::from_lookup(|k| env.get(k).cloned()).unwrap();
        assert_eq!(c.aws_region, "eu-west-1");
        assert_eq!(c.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
    }
}
