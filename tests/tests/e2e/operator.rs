//! Operator CLI end to end: `tracklayer keys …` and `tracklayer users …` on a data directory,
//! checked against a running `tracklayer serve` and the audit log.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use tracklayer_tests::*;

/// `tracklayer <args> --data-dir <dir> --json`, parsed.
fn cli(dir: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--data-dir", dir.to_str().unwrap(), "--json"]);
    let out = tracklayer(&all).unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "tracklayer {args:?} --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `tracklayer <args> --data-dir <dir>`, expected to fail: its stderr.
/// A data directory initialised for region "us", in a temporary folder that lives as long
/// as the first value.
fn initialised_in_us() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    init(&dir, "us").unwrap();
    (tmp, dir)
}

/// Asserts that `tracklayer <args>` fails on `dir` with an error naming `reason`.
fn assert_refused(dir: &Path, args: &[&str], reason: &str) {
    let err = cli_refused(dir, args);
    assert!(err.contains(reason), "{err}");
}

fn cli_refused(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(tracklayer_bin())
        .args(args)
        .args(["--data-dir", dir.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "tracklayer {args:?} should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        out.stdout.is_empty(),
        "a refused command prints nothing on stdout"
    );
    String::from_utf8(out.stderr).unwrap()
}

/// `tracklayer <args> --data-dir <dir>` as text.
fn cli_text(dir: &Path, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--data-dir", dir.to_str().unwrap()]);
    String::from_utf8(tracklayer(&all).unwrap().stdout).unwrap()
}

/// A new ingest write key: (id, secret).
fn create_ingest_key(dir: &Path, name: &str) -> (String, String) {
    let v = cli(dir, &["keys", "create", "--kind", "ingest", "--name", name]);
    (
        v["key"]["id"].as_str().unwrap().to_owned(),
        v["secret"].as_str().unwrap().to_owned(),
    )
}

/// The status a running server answers to one event sent with `key`.
async fn post_with(url: &str, key: &str, message_id: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{url}/v1/track"))
        .basic_auth(key, Some(""))
        .json(
            &json!({"userId": "operator-test-user", "event": "Signed Up", "messageId": message_id}),
        )
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn key_in<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("key {id} is not listed: {list}"))
}

fn user_in<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list.as_array().unwrap().iter().find(|u| u["id"] == id)
}

/// Audit log rows of mutations: (actor, action, doc). (The chain's genesis entry, which the
/// audit log writes itself, is no mutation.)
fn audit_rows(dir: &Path) -> Vec<(String, String, String)> {
    let db = database(dir);
    let mut stmt = db
        .prepare(
            "SELECT actor, action, doc FROM audit_log WHERE action != 'audit.genesis' ORDER BY seq",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_created_on_the_cli_works_on_a_running_server_and_stops_working_once_revoked() {
    let (_tmp, dir) = initialised_in_us();
    let mut server = Server::start(&dir, &[]).unwrap();

    // Created while the server runs: accepted at once.
    let (used_id, used) = create_ingest_key(&dir, "website");
    assert!(used.starts_with(&format!("tl_ingest_us_{used_id}_")));
    assert_eq!(post_with(&server.url, &used, "op-used-1").await, 200);

    // A key revoked before its first use has nothing cached: refused at once.
    let (unused_id, unused) = create_ingest_key(&dir, "never used");
    let revoked = cli(&dir, &["keys", "revoke", &unused_id]);
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    assert_eq!(post_with(&server.url, &unused, "op-unused-1").await, 401);

    // A key the server has verified is read again at most every 5 s: the server, another
    // process, refuses it within that time.
    cli(&dir, &["keys", "revoke", &used_id]);
    let revoked_at = std::time::Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let status = post_with(&server.url, &used, &format!("op-used-{}", n + 1)).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(6),
            "still accepted {:?} after the revocation",
            revoked_at.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    let list = cli(&dir, &["keys", "list"]);
    assert!(key_in(&list, &used_id)["revoked_at"].is_string());
    assert!(key_in(&list, &unused_id)["revoked_at"].is_string());
    server.stop().unwrap();

    // The secrets were printed once and exist nowhere on disk, logs included.
    let hits = scan(&dir, &[used, unused]);
    assert!(hits.is_empty(), "secrets found on disk: {hits:?}");
}

/// A call to the admin API of a running server with the owner's token: (status, body).
async fn admin_call(url: &str, token: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let client = reqwest::Client::new();
    let req = match method {
        "POST" => client.post(format!("{url}/admin/v1{path}")).json(&body),
        _ => client.get(format!("{url}/admin/v1{path}")),
    };
    let resp = req.bearer_auth(token).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_applies_admin_api_changes_to_tracking_from_the_next_request() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let keys = init(&dir, "us").unwrap();
    let server = Server::start(&dir, &["--allow-private-egress"]).unwrap();
    let (url, token) = (&server.url, &keys.admin_token);

    // A new destination receives the event right after it.
    assert_eq!(post_with(url, &keys.write_key, "serve-1").await, 200);
    let (status, d) = admin_call(
        url,
        token,
        "POST",
        "/destinations",
        json!({
            "name": "Warehouse", "kind": "webhook",
            "config": {"url": "http://127.0.0.1:9/hook"},
            "secrets": {"signing_secret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5LW5ldmVyLXNob3du"} // pragma: allowlist secret
        }),
    )
    .await;
    assert_eq!(status, 201, "{d}");
    assert_eq!(post_with(url, &keys.write_key, "serve-2").await, 200);
    let routed: i64 = database(&dir)
        .query_row(
            "SELECT COUNT(*) FROM queue WHERE destination_id = ?1",
            [d["id"].as_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        routed, 1,
        "the event after the destination was routed to it"
    );

    // A write key revoked through the admin API is refused by the next request.
    let (status, created) =
        admin_call(url, token, "POST", "/api-keys", json!({"kind": "ingest"})).await;
    assert_eq!(status, 201, "{created}");
    let key = created["secret"].as_str().unwrap();
    assert_eq!(post_with(url, key, "serve-3").await, 200);
    let path = format!(
        "/api-keys/{}/revoke",
        created["key"]["id"].as_str().unwrap()
    );
    assert_eq!(
        admin_call(url, token, "POST", &path, json!({})).await.0,
        200
    );
    assert_eq!(post_with(url, key, "serve-4").await, 401);

    // The failed attempt is counted for the operator.
    let health: Value = reqwest::get(format!("{url}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["authentication"]["tracking_failures"], 1, "{health}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_a_key_on_the_cli_keeps_the_old_key_working_for_the_overlap_and_the_new_key_works()
{
    let (_tmp, dir) = initialised_in_us();
    let (old_id, old) = create_ingest_key(&dir, "app");
    let (cut_id, cut) = create_ingest_key(&dir, "app without overlap");

    let rotated = cli(&dir, &["keys", "rotate", &old_id, "--overlap-days", "1"]);
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(rotated["key"]["id"], old_id.as_str());
    assert_eq!(rotated["key"]["kind"], "ingest");
    assert_eq!(rotated["replaces"]["id"], old_id.as_str());
    let cut_rotated = cli(&dir, &["keys", "rotate", &cut_id, "--overlap-days", "0"]);
    let cut_new = cut_rotated["secret"].as_str().unwrap().to_owned();

    let mut server = Server::start(&dir, &[]).unwrap();
    assert_eq!(post_with(&server.url, &old, "op-rot-old").await, 200);
    assert_eq!(post_with(&server.url, &new, "op-rot-new").await, 200);
    // No overlap: the old key stops at once, its successor works.
    assert_eq!(post_with(&server.url, &cut, "op-cut-old").await, 401);
    assert_eq!(post_with(&server.url, &cut_new, "op-cut-new").await, 200);
    server.stop().unwrap();

    // The old key's expiry moved to the end of the one-day overlap.
    let list = cli(&dir, &["keys", "list"]);
    let expires = key_in(&list, &old_id)["expires_at"].as_str().unwrap();
    let created = key_in(&list, &old_id)["created_at"].as_str().unwrap();
    assert!(
        expires[..10] > created[..10],
        "overlap ends after today: {expires}"
    );
    assert!(key_in(&list, &old_id)["revoked_at"].is_null());
}

#[test]
fn keys_list_shows_a_table_of_prefixes_and_dates_and_never_a_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let boot = init(&dir, "eu").unwrap();
    let token = cli(
        &dir,
        &[
            "keys",
            "create",
            "--kind",
            "svc",
            "--role",
            "viewer",
            "--name",
            "dashboards",
        ],
    );
    let secret = token["secret"].as_str().unwrap();
    assert!(secret.starts_with("tl_svc_eu_"));
    assert_eq!(token["key"]["role"], "viewer");
    assert!(token["key"].get("secret").is_none());

    let text = cli_text(&dir, &["keys", "list"]);
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "ID",
            "PREFIX",
            "KIND",
            "ROLE",
            "NAME",
            "CREATED",
            "LAST USED",
            "EXPIRES",
            "REVOKED"
        ]
    );
    // init's admin token and write key, and the service token.
    assert_eq!(lines.count(), 3, "{text}");
    assert!(
        text.contains(token["key"]["prefix"].as_str().unwrap()),
        "{text}"
    );
    assert!(text.contains("dashboards"), "{text}");

    let json = serde_json::to_string(&cli(&dir, &["keys", "list"])).unwrap();
    for listing in [&text, &json] {
        for s in [secret, &boot.write_key, &boot.admin_token] {
            let secret_part = s.rsplit('_').next().unwrap();
            assert!(!listing.contains(secret_part), "a secret is listed");
        }
    }
}

#[test]
fn keys_create_refuses_bad_requests_with_a_clear_message_and_creates_nothing() {
    let (_tmp, dir) = initialised_in_us();
    let before = cli(&dir, &["keys", "list"]).as_array().unwrap().len();

    assert_refused(
        &dir,
        &["keys", "create", "--kind", "svc"],
        "--role: service tokens need a role",
    );
    assert_refused(
        &dir,
        &["keys", "create", "--kind", "ingest", "--role", "admin"],
        "ingest write keys have no role",
    );
    assert_refused(
        &dir,
        &[
            "keys",
            "create",
            "--kind",
            "ingest",
            "--expires-in-days",
            "91",
        ],
        "--expires-in-days",
    );
    assert_refused(
        &dir,
        &["keys", "rotate", "nosuchkey0000000", "--overlap-days", "8"],
        "--overlap-days",
    );
    assert_refused(
        &dir,
        &["keys", "revoke", "nosuchkey0000000"],
        "no such API key",
    );

    assert_eq!(
        cli(&dir, &["keys", "list"]).as_array().unwrap().len(),
        before
    );
}

#[test]
fn init_with_email_makes_it_the_owners_address_and_refuses_one_that_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    init_with(&dir, &["--email", "Owner@Shop.Example", "--json"]).unwrap();
    let list = cli(&dir, &["users", "list"]);
    assert_eq!(
        user_in(&list, "usr_owner").unwrap()["email"],
        "owner@shop.example",
        "{list}"
    );

    let other = tmp.path().join("other");
    let err = init_with(&other, &["--email", "not-an-email"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("must be an email address"), "{err}");
    assert!(!other.join("tracklayer.db").exists());
}

#[test]
fn users_are_invited_listed_given_a_role_and_removed_on_the_cli() {
    let (_tmp, dir) = initialised_in_us();

    let ana = cli(
        &dir,
        &["users", "invite", "ana@example.com", "--role", "editor"],
    );
    let ana_id = ana["id"].as_str().unwrap().to_owned();
    assert!(ana_id.starts_with("usr_"));
    assert_eq!(ana["role"], "editor");

    let list = cli(&dir, &["users", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!(user_in(&list, "usr_owner").unwrap()["role"], "admin");
    assert_eq!(user_in(&list, &ana_id).unwrap()["email"], "ana@example.com");
    let text = cli_text(&dir, &["users", "list"]);
    assert!(text.starts_with("ID"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(&ana_id) && l.contains("editor")),
        "{text}"
    );

    assert_refused(
        &dir,
        &["users", "invite", "ana@example.com", "--role", "viewer"],
        "a user with this email exists",
    );
    assert_refused(
        &dir,
        &["users", "invite", "not-an-email", "--role", "viewer"],
        "must be an email address",
    );

    let changed = cli(&dir, &["users", "set-role", &ana_id, "viewer"]);
    assert_eq!(changed["role"], "viewer");
    assert_eq!(
        user_in(&cli(&dir, &["users", "list"]), &ana_id).unwrap()["role"],
        "viewer"
    );

    assert_eq!(
        cli(&dir, &["users", "remove", &ana_id]),
        json!({"removed": ana_id})
    );
    assert!(user_in(&cli(&dir, &["users", "list"]), &ana_id).is_none());
    assert_refused(&dir, &["users", "remove", &ana_id], "no such user");
}

#[test]
fn a_malformed_user_id_is_refused_by_name_before_the_data_directory_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let nowhere = tmp.path().join("nowhere");
    for args in [
        &["users", "remove", "ana@example.com"][..],
        &["users", "set-role", "USR_ANA", "viewer"][..],
    ] {
        assert_refused(&nowhere, args, "ID: not a user id (expected usr_<id>)");
    }
    assert!(!nowhere.exists());
}

#[test]
fn the_last_admin_can_be_neither_removed_nor_demoted_on_the_cli() {
    let (_tmp, dir) = initialised_in_us();

    assert_refused(
        &dir,
        &["users", "remove", "usr_owner"],
        "the last admin cannot be removed",
    );
    assert_refused(
        &dir,
        &["users", "set-role", "usr_owner", "editor"],
        "the last admin cannot be demoted",
    );
    assert_eq!(
        user_in(&cli(&dir, &["users", "list"]), "usr_owner").unwrap()["role"],
        "admin"
    );

    // With a second admin, the owner may go.
    let bo = cli(
        &dir,
        &["users", "invite", "bo@example.com", "--role", "admin"],
    );
    cli(&dir, &["users", "remove", "usr_owner"]);
    let list = cli(&dir, &["users", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], bo["id"]);
    let err = cli_refused(&dir, &["users", "remove", bo["id"].as_str().unwrap()]);
    assert!(err.contains("the last admin cannot be removed"), "{err}");
}

#[test]
fn operator_commands_are_audited_as_cli_operator_without_secrets_or_emails() {
    let (_tmp, dir) = initialised_in_us();
    let (key_id, secret) = create_ingest_key(&dir, "audited");
    let rotated = cli(&dir, &["keys", "rotate", &key_id]);
    cli(&dir, &["keys", "revoke", &key_id]);
    let carol = cli(
        &dir,
        &["users", "invite", "carol@example.com", "--role", "viewer"],
    );
    let carol_id = carol["id"].as_str().unwrap();
    cli(&dir, &["users", "set-role", carol_id, "editor"]);
    cli(&dir, &["users", "remove", carol_id]);
    // A refused command changes nothing and records nothing.
    cli_refused(&dir, &["users", "remove", "usr_owner"]);

    let rows = audit_rows(&dir);
    let actions: Vec<&str> = rows.iter().map(|(_, a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "api_key.create",
            "api_key.rotate",
            "api_key.revoke",
            "user.invite",
            "user.set_role",
            "user.remove"
        ]
    );
    for (actor, action, doc) in &rows {
        assert_eq!(actor, "cli:operator", "{action}");
        for needle in [
            secret.as_str(),
            rotated["secret"].as_str().unwrap(),
            "carol@example.com",
        ] {
            assert!(
                !doc.contains(needle),
                "{action} audits a secret or an email"
            );
        }
    }
    assert!(rows[0].2.contains(&key_id));
    assert!(rows[4].2.contains(carol_id));
}

/// Adds the "Warehouse" webhook destination; returns its id.
fn add_warehouse_webhook(dir: &Path) -> String {
    add_destination(
        dir,
        &json!({"name": "Warehouse", "kind": "webhook",
            "config": {"url": "https://hooks.example.com/tracklayer"},
            "secrets": {"signing_secret": super::WEBHOOK_SECRET}}),
    )
    .unwrap()
}

/// The header cells of a table printed by the CLI (columns two or more spaces apart).
fn table_cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn destinations_list_prints_a_table_and_with_json_the_same_json_as_before() {
    let (_tmp, dir) = initialised_in_us();
    let hook = add_warehouse_webhook(&dir);
    let meta = add_destination(
        &dir,
        &json!({"name": "Meta", "kind": "meta_capi",
            "config": {"pixel_id": "1234567890", "api_version": "v21.0"},
            "secrets": {"access_token": super::META_TOKEN}}),
    )
    .unwrap();
    cli_text(&dir, &["destinations", "pause", &meta]);

    let text = cli_text(&dir, &["destinations", "list"]);
    let mut lines = text.lines();
    assert_eq!(
        table_cells(lines.next().unwrap()),
        ["ID", "NAME", "KIND", "STATUS", "PAUSED"]
    );
    let rows: Vec<Vec<&str>> = lines.map(table_cells).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows.contains(&vec![hook.as_str(), "Warehouse", "webhook", "active", "no"]),
        "{text}"
    );
    assert!(
        rows.contains(&vec![meta.as_str(), "Meta", "meta_capi", "paused", "yes"]),
        "{text}"
    );
    assert!(!text.contains('{'), "a table, not JSON: {text}");

    let list = cli(&dir, &["destinations", "list"]);
    let all = list.as_array().unwrap();
    assert_eq!(all.len(), 2);
    let keys: std::collections::BTreeSet<&str> = all[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let before = [
        "id",
        "name",
        "kind",
        "config",
        "secrets",
        "consent_purposes",
        "events",
        "endpoint",
        "paused",
        "created_at",
    ];
    assert_eq!(keys, before.into_iter().collect());
    let paused = all.iter().find(|d| d["id"] == meta.as_str()).unwrap();
    assert_eq!(paused["paused"], true);
    assert!(!list.to_string().contains(super::META_TOKEN), "no secret");
}

#[test]
fn replay_since_takes_an_rfc3339_time_or_a_date_and_names_the_formats_otherwise() {
    let (_tmp, dir) = initialised_in_us();
    let hook = add_warehouse_webhook(&dir);
    let data_dir = dir.to_str().unwrap();
    for since in ["2026-01-05", "2026-01-05T10:00:00Z"] {
        let out = tracklayer(&[
            "destinations",
            "replay",
            "--data-dir",
            data_dir,
            "--since",
            since,
            &hook,
        ])
        .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["replayed_messages"], 0, "--since {since}: {v}");
    }

    for (flag, bad) in [("--since", "yesterday"), ("--until", "05/01/2026")] {
        let out = Command::new(tracklayer_bin())
            .args(["destinations", "replay", "--data-dir", data_dir, flag, bad])
            .arg(&hook)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {bad} is a usage error");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        for needle in [flag, bad, "RFC 3339", "YYYY-MM-DD"] {
            assert!(err.contains(needle), "{flag} {bad}: {err:?} lacks {needle}");
        }
    }
}
