//! `tracklayer --backend aws init` against moto: the operator bootstraps a deployed stack,
//! found by its name alone, with the standard credential chain (here: environment variables)
//! and `AWS_ENDPOINT_URL`.
//!
//! One moto server for this binary, started from the repository's `.venv` (made by
//! `make test`) on a free loopback port, stopped when the binary exits.

use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::Credentials;
use tracklayer_aws::config::{stack_key_alias, stack_table_names};
use tracklayer_aws::provision::{self, Options};
use tracklayer_aws::{
    DynamoAuditLog, DynamoControlStore, DynamoDeliveryLog, DynamoDsrStore, DynamoEventStore,
    KmsKeyring, SqsDeliveryQueue,
};
use tracklayer_core::admin::{AdminPorts, AdminService};
use tracklayer_core::clock::{Clock, SystemClock, SystemIds};
use tracklayer_core::ports::ControlStore;
use tracklayer_core::services::CommonPorts;
use tracklayer_core::workspace::{Region, WorkspaceId};

// ---------------------------------------------------------------------------------------------
// moto: one server for this test binary, from the shared launcher of `tracklayer-tests`
// (the repository's `.venv`, a free loopback port, stopped when the binary exits).

fn endpoint() -> &'static str {
    &tracklayer_tests::lambda::stack::Moto::shared().endpoint
}

const AWS_REGION: &str = "eu-central-1";

async fn sdk() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(AWS_REGION))
        .endpoint_url(endpoint())
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .http_client(tracklayer_aws::https_client())
        .load()
        .await
}

/// What `sam deploy` would have made of a stack named `stack`: its tables and its platform
/// key with the stack's alias.
async fn deploy(stack: &str) {
    let sdk = sdk().await;
    let options = Options {
        deletion_protection: false,
        ..Options::default()
    };
    provision::create_tables(
        &aws_sdk_dynamodb::Client::new(&sdk),
        &stack_table_names(stack),
        &options,
    )
    .await
    .expect("create the stack's tables on moto");
    let kms = aws_sdk_kms::Client::new(&sdk);
    let key = kms.create_key().send().await.expect("create a KMS key");
    let key_id = key
        .key_metadata()
        .expect("key metadata")
        .key_id()
        .to_owned();
    kms.create_alias()
        .alias_name(stack_key_alias(stack))
        .target_key_id(key_id)
        .send()
        .await
        .expect("alias the key");
}

/// Runs the `tracklayer` binary as an operator would, with credentials in the environment.
/// `tracklayer --backend aws --region <AWS_REGION> --stack <stack> init <extra>`.
fn init(stack: &str, extra: &[&str]) -> Output {
    let args = [
        "--backend",
        "aws",
        "--region",
        AWS_REGION,
        "--stack",
        stack,
        "init",
    ];
    tracklayer(&[&args[..], extra].concat())
}

fn tracklayer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tracklayer"))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("TRACKLAYER_STACK")
        .env_remove("TRACKLAYER_BACKEND")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .output()
        .expect("run tracklayer")
}

fn unique_stack() -> String {
    format!("tl-init-{}", uuid_like())
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

/// The stack's control plane, as the admin function sees it.
async fn admin_service(stack: &str) -> AdminService {
    let sdk = sdk().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let tables = stack_table_names(stack);
    let keyring = Arc::new(KmsKeyring::new(
        aws_sdk_kms::Client::new(&sdk),
        stack_key_alias(stack),
        Duration::from_secs(60),
    ));
    AdminService::new(
        AdminPorts {
            common: CommonPorts {
                control: Arc::new(DynamoControlStore::new(dynamodb.clone(), &tables.control)),
                audit: Arc::new(DynamoAuditLog::new(
                    dynamodb.clone(),
                    &tables.audit,
                    keyring.clone(),
                )),
                keyring,
                delivery_log: Arc::new(DynamoDeliveryLog::new(
                    dynamodb.clone(),
                    &tables.delivery_log,
                )),
                queue: Arc::new(SqsDeliveryQueue::new(
                    aws_sdk_sqs::Client::new(&sdk),
                    Default::default(),
                    Arc::new(SystemClock),
                )),
                dsr: Arc::new(DynamoDsrStore::new(
                    dynamodb.clone(),
                    &tables.control,
                    &tables.events,
                )),
                mailer: Arc::new(tracklayer_core::testkit::sessions::RecordingMailer::default()),
                clock: Arc::new(SystemClock),
                ids: Arc::new(SystemIds),
            },
            events: Arc::new(DynamoEventStore::new(dynamodb.clone(), &tables.events)),
            stats: Arc::new(tracklayer_aws::DynamoStats::new(
                dynamodb.clone(),
                &tables.delivery_log,
            )),
            sessions: Arc::new(tracklayer_aws::DynamoSessionStore::new(
                dynamodb,
                &tables.control,
            )),
            url_guard: Arc::new(tracklayer_egress::EgressPolicy::default()),
        },
        Region::Eu,
    )
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn init_creates_the_first_workspace_of_a_deployed_stack_found_by_its_name() {
    let stack = unique_stack();
    deploy(&stack).await;
    let out = init(&stack, &["--json"]);
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(shown["region"], "eu");
    assert_eq!(shown["stack"], stack.as_str());
    assert_eq!(shown["aws_region"], AWS_REGION);
    let id = WorkspaceId::parse(shown["workspace_id"].as_str().expect("workspace_id"))
        .expect("a workspace id");
    assert_eq!(id.region(), Region::Eu);

    let control = DynamoControlStore::new(
        aws_sdk_dynamodb::Client::new(&sdk().await),
        stack_table_names(&stack).control,
    );
    let all = control.workspaces(SystemClock.now()).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, id);

    // The admin token opens the admin API of that workspace.
    let admin = admin_service(&stack).await;
    let principal = admin
        .authenticate(shown["admin_token"].as_str().expect("admin_token"))
        .await
        .expect("the admin token authenticates");
    assert_eq!(principal.workspace_id, id);
    assert_eq!(principal.role, tracklayer_core::keys::Role::Admin);
}

#[tokio::test]
async fn init_refuses_a_stack_that_already_has_a_workspace() {
    let stack = unique_stack();
    deploy(&stack).await;
    assert!(init(&stack, &["--json"]).status.success());
    let again = init(&stack, &["--json"]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already has 1 workspace"), "{stderr}");
}

#[tokio::test]
async fn init_names_the_missing_stack_when_its_tables_are_not_there() {
    let out = init("no-such-stack", &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no-such-stack-control") && stderr.contains("--stack"),
        "{stderr}"
    );
}
