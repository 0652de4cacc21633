//! An egress for use-case tests: it sends nothing, keeps every request and gives each the same
//! answer.

use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use crate::deliver::{HttpRequest, HttpResponse};
use crate::ports::{Egress, EgressError};

/// Keeps the requests it is given and answers each with one fixed response.
#[derive(Debug)]
pub struct RecordingEgress {
    answer: HttpResponse,
    sent: Mutex<Vec<HttpRequest>>,
}

impl RecordingEgress {
    /// Answers every request with `status` and `body` (no headers).
    pub fn answering(status: u16, body: &[u8]) -> Self {
        Self {
            answer: HttpResponse::new(status, &[], body),
            sent: Mutex::default(),
        }
    }

    /// Every request sent so far, oldest first.
    pub fn sent(&self) -> Vec<HttpRequest> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The bodies of the requests sent so far, read as JSON, oldest first.
    pub fn json_bodies(&self) -> Vec<Value> {
        self.sent()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).expect("a JSON request body"))
            .collect()
    }
}

#[async_trait]
impl Egress for RecordingEgress {
    async fn post(&self, request: &HttpRequest) -> Result<HttpResponse, EgressError> {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request.clone());
        Ok(self.answer.clone())
    }
}
