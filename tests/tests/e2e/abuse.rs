//! `tracklayer serve`'s abuse-limit flags reach its server and its tracking API (issue 13,
//! item 6; the limits themselves are tested in crates/http).

use std::io::{Read, Write};

use super::*;

fn host_port(url: &str) -> &str {
    url.trim_start_matches("http://")
}

#[tokio::test]
async fn serve_answers_431_past_max_headers_and_429_past_the_per_address_rate() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), "us").unwrap();
    let mut server = Server::start(
        dir.path(),
        &["--max-headers", "10", "--rate-limit-per-ip", "1"],
    )
    .unwrap();

    let mut head = String::from("GET /healthz HTTP/1.1\r\nHost: test\r\n");
    for i in 0..10 {
        head.push_str(&format!("X-Pad-{i}: v\r\n"));
    }
    let mut stream = std::net::TcpStream::connect(host_port(&server.url)).unwrap();
    stream.write_all(format!("{head}\r\n").as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");

    // Three at once from one address at 1 per second: at least one is refused before its
    // (here wrong) key is looked at.
    let post = |key: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/v1/track", server.url))
            .basic_auth(key, Some(""))
            .json(&json!({"userId": "u", "event": "e"}))
            .send()
    };
    let wrong = "tl_ingest_not_a_key";
    let (a, b, c) = tokio::join!(post(wrong), post(wrong), post(wrong));
    let statuses: Vec<u16> = [a, b, c]
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    server.stop().unwrap();
}
