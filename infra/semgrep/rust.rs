// Test cases for rust.yaml (`semgrep --test`): `ruleid:` marks the next line as a finding of
// that rule, `ok:` as none. Not compiled: only semgrep reads this file.

// ---- tl-request-unwrap ----------------------------------------------------------------------
async fn track(req: Request, state: State) -> Response {
    // ruleid: tl-request-unwrap
    let agent = req.headers().get(header::USER_AGENT).unwrap();
    // ruleid: tl-request-unwrap
    let text = agent.to_str().expect("ascii");
    let (parts, body) = req.into_parts();
    // ruleid: tl-request-unwrap
    let bytes = read_body(&parts.headers, body, MAX_REQUEST_BYTES).await.unwrap();
    // ruleid: tl-request-unwrap
    let first = bytes[0];
    // ok: tl-request-unwrap
    let bytes = match read_body(&parts.headers, body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(p) => return p.into_response(),
    };
    // ok: tl-request-unwrap
    let first = bytes.first().copied();
    // ok: tl-request-unwrap
    let body = serde_json::to_vec(&state.summary()).expect("a summary serializes");
    // ok: tl-request-unwrap
    let limit = state.limits[0];
}

fn event_name(wire: &Value) -> Result<String, Fail> {
    // ruleid: tl-request-unwrap
    let name = wire.get("event").unwrap();
    // ruleid: tl-request-unwrap
    let n = wire.get("count").and_then(Value::as_u64).expect("a count");
    let index = wire.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
    // ruleid: tl-request-unwrap
    let pick = NAMES[index];
    // ok: tl-request-unwrap
    let name = wire.get("event").and_then(Value::as_str).ok_or(Fail::missing("/event"))?;
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    fn reads_the_header() {
        // ok: tl-request-unwrap
        let agent = req.headers().get(header::USER_AGENT).unwrap();
    }
}

// ---- tl-sql-format ----------------------------------------------------------------------------
fn sweep(tx: &Transaction, table: &str, live: &str) {
    // ruleid: tl-sql-format
    tx.execute(&format!("DELETE FROM {table} WHERE expires_at <= ?1"), [now]);
    // ruleid: tl-sql-format
    let doc = tx.query_row(&format!("SELECT doc FROM users WHERE {live} AND id = ?3"), params![ws], |r| r.get(0));
    // ruleid: tl-sql-format
    let q = format!("UPDATE keys SET revoked = 1 WHERE id = '{id}'");
    // ok: tl-sql-format
    tx.execute("DELETE FROM events WHERE expires_at <= ?1", [now]);
    // ok: tl-sql-format
    let step = format!("create queue {name}");
    // ok: tl-sql-format
    let step = format!("create table {}", spec.name);
    // ok: tl-sql-format
    let expression = format!("DELETE {}", parts.join(", "));
    // ok: tl-sql-format
    let message = format!("deleted {n} events from the store");
}

// ---- tl-log-pii -------------------------------------------------------------------------------
fn failed(key: Option<&KeyId>, ip: Option<IpAddr>, user: &User, token: &SecretString) {
    // ruleid: tl-log-pii
    tracing::warn!(audience = "admin", key_id, ip, failures_total = total, "authentication failed");
    // ruleid: tl-log-pii
    tracing::info!(email = %user.email, "user invited");
    // ruleid: tl-log-pii
    tracing::debug!(user = %user.email, "user invited");
    // ruleid: tl-log-pii
    info!(client_ip = ?meta.ip, "request");
    // ruleid: tl-log-pii
    tracing::error!(secret = token.expose_secret(), "sealing failed");
    // ruleid: tl-log-pii
    let span = tracing::info_span!("ingest", user_agent = %agent);
    let AuthError::Refused(reason) = e else {
        // ruleid: tl-log-pii
        tracing::info!(
            key_id = key.map(KeyId::as_str),
            ip = ip.map(|ip| ip.to_string()),
            "API key authentication refused"
        );
        return;
    };
    // ok: tl-log-pii
    tracing::info!(workspace = %ws, request = %r.id, events = n, "data-subject request completed");
    // ok: tl-log-pii
    tracing::warn!(key_id = key.map(KeyId::as_str), "the token was refused, ip unknown");
    // ok: tl-log-pii
    tracing::info!(ip_blocklist_len = n, tokens_total = m, "security policy updated");
}

// ---- tl-reqwest-outside-egress ----------------------------------------------------------------
fn mailer() -> Mailer {
    // ruleid: tl-reqwest-outside-egress
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    // ruleid: tl-reqwest-outside-egress
    let body = reqwest::get(url).await?;
    // ok: tl-reqwest-outside-egress
    let http = tracklayer_egress::EgressClient::new(config)?;
}

// ---- tl-secret-eq -----------------------------------------------------------------------------
fn check(presented: &SecretString, stored: &SecretString, signature: &str, expected_signature: &str) -> bool {
    // ruleid: tl-secret-eq
    if presented.expose_secret() == stored.expose_secret() {
        return true;
    }
    // ruleid: tl-secret-eq
    if signature != expected_signature {
        return false;
    }
    // ruleid: tl-secret-eq
    let same = computed_mac.as_slice() == header.mac;
    // ok: tl-secret-eq
    let same: bool = computed.ct_eq(header.mac.as_bytes()).into();
    // ok: tl-secret-eq
    if signature == "" {
        return false;
    }
    // ok: tl-secret-eq
    if key.kind == KeyKind::Pat {}
    // ok: tl-secret-eq
    let short = token.len() == 0;
    same
}

// ---- tl-debug-derive-pii ----------------------------------------------------------------------
// ruleid: tl-debug-derive-pii
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

// ruleid: tl-debug-derive-pii
#[derive(Debug, Clone, PartialEq)]
pub struct Email(String);

// ok: tl-debug-derive-pii
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub secret: SecretString,
    pub owner: Email,
}

// ok: tl-debug-derive-pii
#[derive(Clone)]
pub struct Credentials {
    pub token: String,
}

// ---- tl-json-unbounded-body / tl-json-reader-unbounded -------------------------------------
async fn handler(req: Request) -> Result<Value, Problem> {
    let whole = axum::body::to_bytes(req.into_body(), usize::MAX).await?;
    // ruleid: tl-json-unbounded-body
    let v: Value = serde_json::from_slice(&whole)?;
    let mut buf = Vec::new();
    stdin.read_to_end(&mut buf)?;
    // ruleid: tl-json-unbounded-body
    let w: Value = serde_json::from_slice(&buf)?;
    // ruleid: tl-json-reader-unbounded
    let x: Value = serde_json::from_reader(stream)?;
    let bounded = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await?;
    // ok: tl-json-unbounded-body
    let y: Value = serde_json::from_slice(&bounded)?;
    // ok: tl-json-reader-unbounded
    let z: Value = serde_json::from_reader(stream.take(MAX_BODY_BYTES as u64))?;
    Ok(v)
}
