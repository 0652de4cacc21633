//! The event documents Lambda hands a function, as AWS builds them: API Gateway HTTP API
//! requests (payload format 2.0) and SQS event source mapping batches.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{json, Value};

/// The account id the emulated stacks pretend to live in.
pub const ACCOUNT: &str = "123456789012";

/// An HTTP request as a client sends it to the HTTP API.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    /// Path without query, e.g. `/v1/batch`.
    pub path: String,
    /// Raw query string without `?`.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub source_ip: String,
}

impl HttpRequest {
    pub fn new(method: &str, path_and_query: &str) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers: Vec::new(),
            body: None,
            source_ip: "198.51.100.23".into(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn json(self, body: &Value) -> Self {
        let mut r = self.header("content-type", "application/json");
        r.body = Some(serde_json::to_vec(body).expect("a JSON value serializes"));
        r
    }

    pub fn basic_auth(self, user: &str) -> Self {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:"));
        self.header("authorization", &format!("Basic {token}"))
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }
}

/// The route of the template that an HTTP API request matches, and its path parameters.
fn route(method: &str, path: &str) -> (String, Value) {
    if let Some(rest) = path.strip_prefix("/admin/v1/") {
        ("ANY /admin/v1/{proxy+}".into(), json!({ "proxy": rest }))
    } else if let Some(rest) = path.strip_prefix("/v1/") {
        ("ANY /v1/{proxy+}".into(), json!({ "proxy": rest }))
    } else if path == "/healthz" && method == "GET" {
        ("GET /healthz".into(), json!({}))
    } else if path == "/" {
        ("ANY /".into(), json!({}))
    } else {
        // The console's pages and assets (`template.yaml`: `/{proxy+}` → admin).
        ("ANY /{proxy+}".into(), json!({ "proxy": &path[1..] }))
    }
}

/// The API Gateway v2 (HTTP API, payload format 2.0) event of `req`, as the stack's API in
/// `region` delivers it: lower-case header names, repeated headers joined by commas,
/// cookies split out, a binary or compressed body base64-encoded.
pub fn http_api_event(req: &HttpRequest, region: &str, request_id: &str, now_ms: u128) -> Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &req.headers {
        let name = name.to_ascii_lowercase();
        if name == "cookie" {
            cookies.extend(value.split("; ").map(str::to_owned));
            continue;
        }
        headers
            .entry(name)
            .and_modify(|v| {
                v.push(',');
                v.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    let user_agent = headers.get("user-agent").cloned().unwrap_or_default();
    let api_id = "tlapi00001";
    let domain = format!("{api_id}.execute-api.{region}.amazonaws.com");
    headers.insert("host".into(), domain.clone());
    headers.insert("x-forwarded-for".into(), req.source_ip.clone());
    headers.insert("x-forwarded-proto".into(), "https".into());
    headers.insert("x-forwarded-port".into(), "443".into());
    let (route_key, path_parameters) = route(&req.method, &req.path);
    let compressed = headers.contains_key("content-encoding");
    let (body, is_base64) = match &req.body {
        None => (Value::Null, false),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) if !compressed => (Value::String(text.to_owned()), false),
            _ => (
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
                true,
            ),
        },
    };
    let mut query_params = serde_json::Map::new();
    for pair in req.query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match query_params.get_mut(k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(v);
            }
            _ => {
                query_params.insert(k.to_owned(), Value::String(v.to_owned()));
            }
        }
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": req.path,
        "rawQueryString": req.query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": api_id,
            "domainName": domain,
            "domainPrefix": api_id,
            "http": {
                "method": req.method,
                "path": req.path,
                "protocol": "HTTP/1.1",
                "sourceIp": req.source_ip,
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": "29/Nov/2026:00:00:00 +0000",
            "timeEpoch": now_ms as u64,
        },
        "isBase64Encoded": is_base64,
    });
    let obj = event.as_object_mut().expect("an object");
    if !cookies.is_empty() {
        obj.insert("cookies".into(), json!(cookies));
    }
    if !query_params.is_empty() {
        obj.insert("queryStringParameters".into(), Value::Object(query_params));
    }
    if path_parameters.as_object().is_some_and(|m| !m.is_empty()) {
        obj.insert("pathParameters".into(), path_parameters);
    }
    if !body.is_null() {
        obj.insert("body".into(), body);
    }
    event
}

/// What API Gateway makes of a function's payload-2.0 response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Reads the function's response document (`statusCode`, `headers`, `body`,
    /// `isBase64Encoded`, `cookies`).
    pub fn from_lambda(doc: &Value) -> anyhow::Result<Self> {
        let status = doc["statusCode"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("response without statusCode: {doc}"))?
            as u16;
        let mut headers = BTreeMap::new();
        if let Some(map) = doc["headers"].as_object() {
            for (k, v) in map {
                headers.insert(k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_owned());
            }
        }
        if let Some(map) = doc["multiValueHeaders"].as_object() {
            for (k, v) in map {
                let joined: Vec<&str> = v
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                headers.insert(k.to_ascii_lowercase(), joined.join(","));
            }
        }
        let text = doc["body"].as_str().unwrap_or("");
        let body = if doc["isBase64Encoded"] == true {
            base64::engine::general_purpose::STANDARD.decode(text)?
        } else {
            text.as_bytes().to_vec()
        };
        Ok(Self {
            status,
            headers,
            body,
        })
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as text, for assertion messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One message of an SQS event source mapping batch.
#[derive(Debug, Clone)]
pub struct SqsRecord {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub md5_of_body: String,
    /// System attributes (`ApproximateReceiveCount`, `SentTimestamp`, ...).
    pub attributes: BTreeMap<String, String>,
    /// String message attributes.
    pub message_attributes: BTreeMap<String, String>,
}

/// The SQS event Lambda's event source mapping hands a function for `records` of the queue
/// `queue_arn`.
pub fn sqs_event(records: &[SqsRecord], queue_arn: &str, region: &str) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            let attributes: BTreeMap<&str, Value> = r
                .message_attributes
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str(),
                        json!({"stringValue": v, "stringListValues": [],
                               "binaryListValues": [], "dataType": "String"}),
                    )
                })
                .collect();
            json!({
                "messageId": r.message_id,
                "receiptHandle": r.receipt_handle,
                "body": r.body,
                "attributes": r.attributes,
                "messageAttributes": attributes,
                "md5OfBody": r.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The message ids a function reported in `batchItemFailures`.
pub fn batch_item_failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The EventBridge scheduled event of the template's `rate(15 minutes)` rule.
pub fn schedule_event(region: &str) -> Value {
    json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": "2026-11-29T00:00:00Z",
        "region": region,
        "resources": [format!("arn:aws:events:{region}:{ACCOUNT}:rule/tracklayer-dsr-sweep")],
        "detail": {}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_api_event_carries_route_headers_and_body_as_api_gateway_sends_them() {
        let req = HttpRequest::new("POST", "/v1/batch?a=1&a=2")
            .basic_auth("tl_ingest_us_k_s")
            .header("Cookie", "a=1; b=2")
            .header("X-Thing", "x")
            .header("x-thing", "y")
            .json(&json!({"batch": []}));

        let e = http_api_event(&req, "us-east-1", "req-1", 1_764_374_400_000);

        assert_eq!(e["version"], "2.0");
        assert_eq!(e["routeKey"], "ANY /v1/{proxy+}");
        assert_eq!(e["pathParameters"]["proxy"], "batch");
        assert_eq!(e["rawQueryString"], "a=1&a=2");
        assert_eq!(e["queryStringParameters"]["a"], "1,2");
        assert_eq!(e["headers"]["x-thing"], "x,y");
        assert_eq!(e["cookies"], json!(["a=1", "b=2"]));
        assert!(e["headers"]["authorization"]
            .as_str()
            .unwrap()
            .starts_with("Basic "));
        assert_eq!(e["requestContext"]["http"]["method"], "POST");
        assert_eq!(e["requestContext"]["http"]["sourceIp"], "198.51.100.23");
        assert_eq!(e["isBase64Encoded"], false);
        assert_eq!(e["body"], r#"{"batch":[]}"#);
    }

    #[test]
    fn a_compressed_body_travels_base64_encoded() {
        let mut req = HttpRequest::new("POST", "/v1/batch").header("content-encoding", "gzip");
        req.body = Some(vec![0x1f, 0x8b, 0x08, 0x00]);

        let e = http_api_event(&req, "eu-central-1", "req-2", 0);

        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["body"], "H4sIAA==");
        assert!(e.get("queryStringParameters").is_none());
    }

    #[test]
    fn a_function_response_document_becomes_an_http_response() {
        let doc = json!({"statusCode": 421, "headers": {"Content-Type": "application/problem+json"},
                         "body": "{\"status\":421}", "isBase64Encoded": false});

        let r = HttpResponse::from_lambda(&doc).unwrap();

        assert_eq!(r.status, 421);
        assert_eq!(r.headers["content-type"], "application/problem+json");
        assert_eq!(r.json()["status"], 421);
        let b64 = json!({"statusCode": 200, "body": "e30=", "isBase64Encoded": true});
        assert_eq!(HttpResponse::from_lambda(&b64).unwrap().body, b"{}");
        assert!(HttpResponse::from_lambda(&json!({"body": ""})).is_err());
    }

    #[test]
    fn an_sqs_event_wraps_each_message_and_failures_are_read_back() {
        let record = SqsRecord {
            message_id: "m-1".into(),
            receipt_handle: "rh-1".into(),
            body: "{}".into(),
            md5_of_body: "99914b932bd37a50b983c5e7c90ae93b".into(),
            attributes: BTreeMap::from([("ApproximateReceiveCount".into(), "1".into())]),
            message_attributes: BTreeMap::from([("kind".into(), "ga4".into())]),
        };

        let e = sqs_event(
            &[record],
            "arn:aws:sqs:us-east-1:123456789012:q",
            "us-east-1",
        );

        let r = &e["Records"][0];
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(r["messageId"], "m-1");
        assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
        assert_eq!(r["messageAttributes"]["kind"]["stringValue"], "ga4");
        assert_eq!(r["messageAttributes"]["kind"]["dataType"], "String");
        let answer = json!({"batchItemFailures": [{"itemIdentifier": "m-1"}]});
        assert_eq!(batch_item_failures(&answer), vec!["m-1".to_owned()]);
        assert!(batch_item_failures(&json!({})).is_empty());
    }
}
