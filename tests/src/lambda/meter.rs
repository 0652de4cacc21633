//! A counting HTTP proxy in front of moto: every AWS request the functions (and the emulated
//! event source mapping) make passes through it and is tallied per caller, region, service
//! and operation, with the DynamoDB read and write units AWS would bill for it.
//!
//! moto reports no real consumed capacity (it answers a constant), so the meter computes
//! units from the items themselves, by AWS's rules: item size is the UTF-8 length of every
//! attribute name plus its value; a write costs 1 unit per started KB of the larger of the
//! item before and after (a failed conditional write still costs), a transactional write
//! twice that, and every global secondary index entry written, changed or removed costs its
//! own units (index entries carry 100 bytes of overhead). A read costs 1 unit per started
//! 4 KB (half for eventually consistent reads), Query and Scan per page, BatchGetItem per
//! key asked for (found or not). To know the item before a write, the meter reads it from
//! moto first (not counted).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use serde_json::{json, Map, Value};

/// What one group of requests cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub requests: u64,
    /// Requests as SQS bills them: one per started 64 KB of payload.
    pub billed_requests: u64,
    pub write_units: f64,
    pub read_units: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.billed_requests += other.billed_requests;
        self.write_units += other.write_units;
        self.read_units += other.read_units;
        self.request_bytes += other.request_bytes;
        self.response_bytes += other.response_bytes;
    }
}

/// (caller access key, region, service, operation).
pub type Key = (String, String, String, String);

#[derive(Debug, Clone)]
struct Schema {
    keys: Vec<String>,
    gsis: Vec<Gsi>,
}

#[derive(Debug, Clone)]
struct Gsi {
    keys: Vec<String>,
    /// `None`: every attribute (ALL); else the non-key attributes projected.
    projected: Option<Vec<String>>,
}

struct Inner {
    upstream: String,
    client: reqwest::Client,
    tallies: Mutex<BTreeMap<Key, Tally>>,
    /// DynamoDB units per (table, operation).
    tables: Mutex<BTreeMap<(String, String), Tally>>,
    schemas: Mutex<HashMap<(String, String), Schema>>,
}

/// The meter: a proxy on `127.0.0.1:<free port>`, stopped on drop.
pub struct Meter {
    pub endpoint: String,
    inner: Arc<Inner>,
    _server: super::LocalServer,
}

tracklayer_core::debug_fields!(Meter: endpoint);

impl Meter {
    /// A meter forwarding to `upstream` (moto's endpoint).
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("a plain HTTP client"),
            tallies: Mutex::new(BTreeMap::new()),
            tables: Mutex::new(BTreeMap::new()),
            schemas: Mutex::new(HashMap::new()),
        });
        let app = Router::new().fallback(forward).with_state(inner.clone());
        let server = super::LocalServer::start(app).await?;
        Ok(Self {
            endpoint: format!("http://{}", server.addr),
            inner,
            _server: server,
        })
    }

    /// Every tally so far.
    pub fn tallies(&self) -> BTreeMap<Key, Tally> {
        self.inner.tallies.lock().unwrap().clone()
    }

    /// DynamoDB requests and units per (table, operation); a request that spans tables
    /// is listed under their names joined by `+`.
    pub fn table_tallies(&self) -> BTreeMap<(String, String), Tally> {
        self.inner.tables.lock().unwrap().clone()
    }

    /// Forgets what was counted (after setting a stack up).
    pub fn reset(&self) {
        self.inner.tallies.lock().unwrap().clear();
        self.inner.tables.lock().unwrap().clear();
    }

    /// The sum of the tallies `pick` selects.
    pub fn total(&self, pick: impl Fn(&Key) -> bool) -> Tally {
        let mut t = Tally::default();
        for (k, v) in self.tallies() {
            if pick(&k) {
                t.add(&v);
            }
        }
        t
    }
}

/// `Credential=<key>/<date>/<region>/<service>/aws4_request` of a SigV4 Authorization header.
fn credential_scope(headers: &HeaderMap) -> (String, String, String) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let scope = auth
        .split("Credential=")
        .nth(1)
        .and_then(|s| s.split([',', ' ']).next())
        .unwrap_or("");
    let parts: Vec<&str> = scope.split('/').collect();
    let get = |i: usize| parts.get(i).copied().unwrap_or("unknown").to_owned();
    (get(0), get(2), get(3))
}

fn operation(headers: &HeaderMap, method: &Method, uri: &Uri, body: &[u8]) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    if let Some(action) = std::str::from_utf8(body)
        .ok()
        .and_then(|b| b.split('&').find_map(|p| p.strip_prefix("Action=")))
    {
        return action.to_owned();
    }
    format!("{method} {}", uri.path())
}

async fn forward(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (caller, region, service) = credential_scope(&headers);
    let op = operation(&headers, &method, &uri, &body);
    let dynamo_write = service == "dynamodb"
        && matches!(
            op.as_str(),
            "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" | "TransactWriteItems"
        );
    let request: Value = if service == "dynamodb" {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let before = if dynamo_write {
        inner.items_touched(&headers, &op, &request).await
    } else {
        Vec::new()
    };

    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut upstream = inner
        .client
        .request(method.clone(), format!("{}{path}", inner.upstream));
    for (name, value) in &headers {
        if !matches!(
            name.as_str(),
            "host" | "content-length" | "connection" | "transfer-encoding"
        ) {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.body(body.clone()).send().await {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status();
    let mut out_headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !matches!(
            name.as_str(),
            "content-length" | "connection" | "transfer-encoding"
        ) {
            out_headers.append(name.clone(), value.clone());
        }
    }
    let answer_body = answer.bytes().await.unwrap_or_default();

    let mut tally = Tally {
        requests: 1,
        billed_requests: 1,
        request_bytes: body.len() as u64,
        response_bytes: answer_body.len() as u64,
        ..Tally::default()
    };
    if service == "sqs" {
        let payload = body.len().max(answer_body.len()) as u64;
        tally.billed_requests = payload.div_ceil(64 * 1024).max(1);
    }
    if service == "dynamodb" {
        let response: Value = serde_json::from_slice(&answer_body).unwrap_or(Value::Null);
        if dynamo_write {
            let after = inner.items_after(&headers, &before).await;
            tally.write_units = write_units(&op, &request, &before, &after);
        } else {
            tally.read_units = read_units(&op, &request, &response);
        }
    }
    if service == "dynamodb" {
        inner
            .tables
            .lock()
            .unwrap()
            .entry((tables_of(&request), op.clone()))
            .or_default()
            .add(&tally);
    }
    inner
        .tallies
        .lock()
        .unwrap()
        .entry((caller, region, service, op))
        .or_default()
        .add(&tally);
    let mut resp = (status, answer_body).into_response();
    resp.headers_mut().extend(out_headers);
    resp
}

/// One item a write touches: its table, key, the write's kind, the item written (puts), the
/// item before, and the table's schema.
#[derive(Debug, Clone)]
struct Touched {
    table: String,
    key: Map<String, Value>,
    kind: WriteKind,
    put: Option<Map<String, Value>>,
    before: Option<Map<String, Value>>,
    schema: Schema,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum WriteKind {
    Put,
    Update,
    Delete,
    Check,
}

impl Inner {
    async fn call(&self, headers: &HeaderMap, op: &str, body: &Value) -> Option<Value> {
        let mut req = self
            .client
            .post(format!("{}/", self.upstream))
            .header("x-amz-target", format!("DynamoDB_20120810.{op}"))
            .header("content-type", "application/x-amz-json-1.0")
            .body(body.to_string());
        if let Some(auth) = headers.get("authorization") {
            req = req.header("authorization", auth);
        }
        let resp = req.send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }

    async fn schema(&self, headers: &HeaderMap, region: &str, table: &str) -> Schema {
        let cache_key = (region.to_owned(), table.to_owned());
        if let Some(s) = self.schemas.lock().unwrap().get(&cache_key) {
            return s.clone();
        }
        let desc = self
            .call(headers, "DescribeTable", &json!({ "TableName": table }))
            .await
            .unwrap_or(Value::Null);
        let t = &desc["Table"];
        let names = |schema: &Value| -> Vec<String> {
            schema
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k["AttributeName"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let schema = Schema {
            keys: names(&t["KeySchema"]),
            gsis: t["GlobalSecondaryIndexes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|g| Gsi {
                            keys: names(&g["KeySchema"]),
                            projected: match g["Projection"]["ProjectionType"].as_str() {
                                Some("ALL") => None,
                                Some("INCLUDE") => Some(
                                    g["Projection"]["NonKeyAttributes"]
                                        .as_array()
                                        .map(|a| {
                                            a.iter()
                                                .filter_map(|v| v.as_str().map(str::to_owned))
                                                .collect()
                                        })
                                        .unwrap_or_default(),
                                ),
                                _ => Some(Vec::new()),
                            },
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        self.schemas
            .lock()
            .unwrap()
            .insert(cache_key, schema.clone());
        schema
    }

    async fn get(
        &self,
        headers: &HeaderMap,
        table: &str,
        key: &Map<String, Value>,
    ) -> Option<Map<String, Value>> {
        let got = self
            .call(
                headers,
                "GetItem",
                &json!({"TableName": table, "Key": key, "ConsistentRead": true}),
            )
            .await?;
        got["Item"].as_object().cloned()
    }

    /// Every item `request` writes, with its state before the write.
    async fn items_touched(&self, headers: &HeaderMap, op: &str, request: &Value) -> Vec<Touched> {
        let (_, region, _) = credential_scope(headers);
        let mut raw: Vec<(String, WriteKind, Value)> = Vec::new();
        match op {
            "PutItem" => raw.push((table_of(request), WriteKind::Put, request["Item"].clone())),
            "UpdateItem" => {
                raw.push((table_of(request), WriteKind::Update, request["Key"].clone()))
            }
            "DeleteItem" => {
                raw.push((table_of(request), WriteKind::Delete, request["Key"].clone()))
            }
            "BatchWriteItem" => {
                for (table, writes) in request["RequestItems"].as_object().into_iter().flatten() {
                    for w in writes.as_array().into_iter().flatten() {
                        if let Some(item) = w["PutRequest"].get("Item") {
                            raw.push((table.clone(), WriteKind::Put, item.clone()));
                        } else if let Some(key) = w["DeleteRequest"].get("Key") {
                            raw.push((table.clone(), WriteKind::Delete, key.clone()));
                        }
                    }
                }
            }
            "TransactWriteItems" => {
                for t in request["TransactItems"].as_array().into_iter().flatten() {
                    for (field, kind, part) in [
                        ("Put", WriteKind::Put, "Item"),
                        ("Update", WriteKind::Update, "Key"),
                        ("Delete", WriteKind::Delete, "Key"),
                        ("ConditionCheck", WriteKind::Check, "Key"),
                    ] {
                        if let Some(x) = t.get(field) {
                            raw.push((table_of(x), kind, x[part].clone()));
                        }
                    }
                }
            }
            _ => {}
        }
        let mut out = Vec::new();
        for (table, kind, value) in raw {
            let schema = self.schema(headers, &region, &table).await;
            let Some(map) = value.as_object() else {
                continue;
            };
            let key: Map<String, Value> = map
                .iter()
                .filter(|(k, _)| schema.keys.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let before = self.get(headers, &table, &key).await;
            out.push(Touched {
                table,
                key,
                kind,
                put: (kind == WriteKind::Put).then(|| map.clone()),
                before,
                schema,
            });
        }
        out
    }

    /// The state of each touched item after the write.
    async fn items_after(
        &self,
        headers: &HeaderMap,
        touched: &[Touched],
    ) -> Vec<Option<Map<String, Value>>> {
        let mut out = Vec::new();
        for t in touched {
            out.push(self.get(headers, &t.table, &t.key).await);
        }
        out
    }
}

/// The tables a DynamoDB request names.
fn tables_of(request: &Value) -> String {
    let mut names: Vec<String> = Vec::new();
    if let Some(t) = request["TableName"].as_str() {
        names.push(t.to_owned());
    }
    if let Some(m) = request["RequestItems"].as_object() {
        names.extend(m.keys().cloned());
    }
    for t in request["TransactItems"].as_array().into_iter().flatten() {
        for part in t.as_object().into_iter().flat_map(|o| o.values()) {
            if let Some(name) = part["TableName"].as_str() {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    names.dedup();
    names.join("+")
}

fn table_of(v: &Value) -> String {
    v["TableName"].as_str().unwrap_or_default().to_owned()
}

/// Bytes of a DynamoDB number: about one byte per two significant digits, plus one.
fn number_size(n: &str) -> usize {
    let digits: String = n
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.max(1).div_ceil(2) + 1
}

fn binary_size(b: &Value) -> usize {
    b.as_str()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .map(|v| v.len())
        .unwrap_or(0)
}

/// Bytes of one attribute value, by DynamoDB's item size rules.
pub fn value_size(v: &Value) -> usize {
    let Some((t, x)) = v.as_object().and_then(|m| m.iter().next()) else {
        return 0;
    };
    let strings = |x: &Value, f: &dyn Fn(&Value) -> usize| -> usize {
        x.as_array().map(|a| a.iter().map(f).sum()).unwrap_or(0)
    };
    match t.as_str() {
        "S" => x.as_str().map(str::len).unwrap_or(0),
        "N" => number_size(x.as_str().unwrap_or("0")),
        "B" => binary_size(x),
        "BOOL" | "NULL" => 1,
        "SS" => strings(x, &|s| s.as_str().map(str::len).unwrap_or(0)),
        "NS" => strings(x, &|s| number_size(s.as_str().unwrap_or("0"))),
        "BS" => strings(x, &binary_size),
        "L" => 3 + strings(x, &|e| value_size(e) + 1),
        "M" => {
            3 + x
                .as_object()
                .map(|m| m.iter().map(|(k, e)| k.len() + value_size(e) + 1).sum())
                .unwrap_or(0)
        }
        _ => 0,
    }
}

/// Bytes of an item: every attribute name plus its value.
pub fn item_size(item: &Map<String, Value>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn units(bytes: usize, unit: usize) -> f64 {
    bytes.div_ceil(unit).max(1) as f64
}

/// The entry an item has in a GSI (keys and projected attributes), if it has one.
fn index_entry(
    item: Option<&Map<String, Value>>,
    table_keys: &[String],
    gsi: &Gsi,
) -> Option<Map<String, Value>> {
    let item = item?;
    if !gsi.keys.iter().all(|k| item.contains_key(k)) {
        return None;
    }
    Some(
        item.iter()
            .filter(|(k, _)| {
                table_keys.contains(k)
                    || gsi.keys.contains(k)
                    || gsi.projected.as_ref().is_none_or(|p| p.contains(k))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

fn index_units(
    before: Option<&Map<String, Value>>,
    after: Option<&Map<String, Value>>,
    schema: &Schema,
) -> f64 {
    const OVERHEAD: usize = 100;
    let mut total = 0.0;
    for gsi in &schema.gsis {
        let old = index_entry(before, &schema.keys, gsi);
        let new = index_entry(after, &schema.keys, gsi);
        let cost = |e: &Map<String, Value>| units(item_size(e) + OVERHEAD, 1024);
        total += match (&old, &new) {
            (None, None) => 0.0,
            (Some(o), None) => cost(o),
            (None, Some(n)) => cost(n),
            (Some(o), Some(n)) => {
                let keys_same = gsi.keys.iter().all(|k| o.get(k) == n.get(k));
                if !keys_same {
                    cost(o) + cost(n)
                } else if o != n {
                    cost(o).max(cost(n))
                } else {
                    0.0
                }
            }
        };
    }
    total
}

fn write_units(
    op: &str,
    _request: &Value,
    touched: &[Touched],
    after: &[Option<Map<String, Value>>],
) -> f64 {
    let factor = if op == "TransactWriteItems" { 2.0 } else { 1.0 };
    let mut total = 0.0;
    for (t, after) in touched.iter().zip(after) {
        let before_size = t.before.as_ref().map(item_size).unwrap_or(0);
        let written = match t.kind {
            WriteKind::Put => t.put.as_ref().map(item_size).unwrap_or(0),
            WriteKind::Update => after.as_ref().map(item_size).unwrap_or(0),
            WriteKind::Delete | WriteKind::Check => 0,
        };
        total += factor * units(before_size.max(written), 1024);
        if t.kind != WriteKind::Check {
            total += index_units(t.before.as_ref(), after.as_ref(), &t.schema);
        }
    }
    total
}

fn read_units(op: &str, request: &Value, response: &Value) -> f64 {
    let eventual = |r: &Value| {
        if r["ConsistentRead"] == true {
            1.0
        } else {
            0.5
        }
    };
    let items_size = |items: &Value| -> usize {
        items
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_object)
                    .map(item_size)
                    .sum::<usize>()
            })
            .unwrap_or(0)
    };
    match op {
        "GetItem" => {
            let size = response["Item"].as_object().map(item_size).unwrap_or(0);
            eventual(request) * units(size, 4096)
        }
        "Query" | "Scan" => eventual(request) * units(items_size(&response["Items"]), 4096),
        "BatchGetItem" => {
            // Every key asked for is read; one that is not found still costs the minimum.
            let mut total = 0.0;
            for (table, asked) in request["RequestItems"].as_object().into_iter().flatten() {
                let wanted = asked["Keys"].as_array().map(Vec::len).unwrap_or(0);
                let found: Vec<usize> = response["Responses"][table]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object)
                    .map(item_size)
                    .collect();
                let missing = wanted.saturating_sub(found.len()) as f64;
                let units_found: f64 = found.iter().map(|s| units(*s, 4096)).sum();
                total += eventual(asked) * (units_found + missing);
            }
            total
        }
        "TransactGetItems" => {
            let mut total = 0.0;
            for r in response["Responses"].as_array().into_iter().flatten() {
                let size = r["Item"].as_object().map(item_size).unwrap_or(0);
                total += 2.0 * units(size, 4096);
            }
            total
        }
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn item_size_counts_names_and_values_by_dynamodb_rules() {
        // "pk"(2) + "abc"(3) + "n"(1) + 12345 (5 digits -> 3+1=4) + "b"(1) + 3 bytes + "t"(1) + 1
        let i = item(json!({"pk": {"S": "abc"}, "n": {"N": "12345"},
                            "b": {"B": "AQID"}, "t": {"BOOL": true}}));
        assert_eq!(item_size(&i), 2 + 3 + 1 + 4 + 1 + 3 + 1 + 1);
        // A map: 3 bytes + per entry name + value + 1.
        let m = item(json!({"m": {"M": {"a": {"S": "xy"}}}}));
        assert_eq!(item_size(&m), 1 + 3 + (1 + 2 + 1));
        // Significant digits "12": one byte, plus one.
        assert_eq!(number_size("-0.000120"), 1 + 1);
    }

    fn schema_with_keys_only_gsi() -> Schema {
        Schema {
            keys: vec!["pk".into(), "sk".into()],
            gsis: vec![Gsi {
                keys: vec!["gpk".into(), "gsk".into()],
                projected: Some(Vec::new()),
            }],
        }
    }

    fn touched(kind: WriteKind, before: Option<Value>, put: Option<Value>) -> Touched {
        Touched {
            table: "t".into(),
            key: Map::new(),
            kind,
            put: put.map(item),
            before: before.map(item),
            schema: schema_with_keys_only_gsi(),
        }
    }

    #[test]
    fn a_put_costs_a_unit_per_started_kilobyte_plus_its_index_entry() {
        let big = "x".repeat(1500);
        let new = json!({"pk": {"S": "a"}, "sk": {"S": "b"}, "gpk": {"S": "g"}, "gsk": {"S": "h"},
                         "doc": {"S": big}});
        let t = touched(WriteKind::Put, None, Some(new.clone()));

        let wru = write_units("PutItem", &Value::Null, &[t], &[Some(item(new))]);

        assert_eq!(wru, 2.0 + 1.0);
    }

    #[test]
    fn a_failed_conditional_put_still_costs_and_a_transaction_costs_double() {
        let old = json!({"pk": {"S": "a"}, "sk": {"S": "b"}});
        let t = touched(WriteKind::Put, Some(old.clone()), Some(old.clone()));
        // Nothing changed (the condition failed): the item is still paid, the index is not.
        assert_eq!(
            write_units(
                "PutItem",
                &Value::Null,
                std::slice::from_ref(&t),
                &[Some(item(old.clone()))]
            ),
            1.0
        );
        assert_eq!(
            write_units("TransactWriteItems", &Value::Null, &[t], &[Some(item(old))]),
            2.0
        );
    }

    #[test]
    fn an_update_that_leaves_the_index_keys_alone_writes_no_index_entry() {
        let before = json!({"pk": {"S": "a"}, "sk": {"S": "b"}, "gpk": {"S": "g"}, "gsk": {"S": "h"},
                            "n": {"N": "1"}});
        let after = json!({"pk": {"S": "a"}, "sk": {"S": "b"}, "gpk": {"S": "g"}, "gsk": {"S": "h"},
                           "n": {"N": "2"}});
        let t = touched(WriteKind::Update, Some(before), None);
        assert_eq!(
            write_units("UpdateItem", &Value::Null, &[t], &[Some(item(after))]),
            1.0
        );
    }

    #[test]
    fn reads_cost_per_started_four_kilobytes_half_when_eventually_consistent() {
        let big = "x".repeat(5000);
        let resp = json!({"Item": {"pk": {"S": big}}});
        assert_eq!(
            read_units("GetItem", &json!({"ConsistentRead": true}), &resp),
            2.0
        );
        assert_eq!(read_units("GetItem", &json!({}), &resp), 1.0);
        let q = json!({"Items": [{"a": {"S": "x"}}, {"a": {"S": "y"}}]});
        assert_eq!(read_units("Query", &json!({}), &q), 0.5);
        // Two keys asked, one found: both are paid.
        let asked = json!({"RequestItems": {"t": {"Keys": [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}],
                                                  "ConsistentRead": true}}});
        let found = json!({"Responses": {"t": [{"pk": {"S": "a"}}]}});
        assert_eq!(read_units("BatchGetItem", &asked, &found), 2.0);
    }

    #[test]
    fn the_caller_region_and_service_come_from_the_signature_scope() {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID1/20261129/eu-central-1/sqs/aws4_request, \
             SignedHeaders=host, Signature=abc"
                .parse()
                .unwrap(),
        );
        h.insert("x-amz-target", "AmazonSQS.SendMessage".parse().unwrap());
        assert_eq!(
            credential_scope(&h),
            ("AKID1".into(), "eu-central-1".into(), "sqs".into())
        );
        assert_eq!(
            operation(&h, &Method::POST, &"/".parse().unwrap(), b""),
            "SendMessage"
        );
        let form = HeaderMap::new();
        assert_eq!(
            operation(
                &form,
                &Method::POST,
                &"/".parse().unwrap(),
                b"Action=ReceiveMessage&x=1"
            ),
            "ReceiveMessage"
        );
    }
}
