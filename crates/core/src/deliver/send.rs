//! Sending a destination's batches: one request each, several at once. For a vendor that
//! takes OAuth 2.0 access tokens ([`Connector::token_endpoint`]), the requests are built with
//! the destination's token ([`oauth`](super::oauth)); the batches its API answers 401 get one
//! new token between them and are sent once more with it, and a second 401 is permanent.
//!
//! The delivery service and the test event both send through [`send_batches`].

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::oauth::{authorized, Grant, TokenSource};
use super::{Connector, HttpResponse, OpenedItem, Outcome, Target};
use crate::ports::{Egress, EgressError};

/// What became of one batch's request.
#[derive(Debug)]
pub enum Sent {
    /// The destination answered.
    Answered(HttpResponse),
    /// No answer (the egress guard refused the URL, or the connection failed).
    Failed(EgressError),
    /// Decided without a usable answer: the connector could not build the request, no access
    /// token could be had, or the API refused a token issued just before; with the HTTP
    /// status, if there was one.
    Settled(Outcome, Option<u16>),
    /// The task sending it panicked.
    Panicked,
}

/// Where requests go out, and the tokens they may need.
#[derive(Clone, Copy)]
#[allow(missing_debug_implementations)]
pub struct Outlet<'a> {
    pub egress: &'a Arc<dyn Egress>,
    pub tokens: &'a TokenSource,
    /// Requests in flight at once, when limited.
    pub semaphore: Option<&'a Arc<Semaphore>>,
}

/// Sends each batch as one request and says what became of it, in the order of `batches`.
pub async fn send_batches(
    out: Outlet<'_>,
    connector: &dyn Connector,
    target: &Target<'_>,
    batches: &[Vec<&OpenedItem>],
) -> Vec<Sent> {
    let all: Vec<usize> = (0..batches.len()).collect();
    let Some(token_url) = connector.token_endpoint(target) else {
        return post(out, connector, target, batches, &all).await;
    };
    let settled = |outcome: Outcome| -> Vec<Sent> {
        all.iter()
            .map(|_| Sent::Settled(outcome.clone(), None))
            .collect()
    };
    let grant = match Grant::of(target, token_url) {
        Ok(g) => g,
        Err(e) => return settled(e.outcome()),
    };
    let token = match out.tokens.token(&grant).await {
        Ok(t) => t,
        Err(e) => return settled(e.outcome()),
    };
    let secrets = authorized(target.secrets, &token);
    let with_token = Target {
        secrets: &secrets,
        ..*target
    };
    let mut sent = post(out, connector, &with_token, batches, &all).await;
    let refused: Vec<usize> = all
        .into_iter()
        .filter(|&b| matches!(&sent[b], Sent::Answered(r) if r.status == 401))
        .collect();
    if refused.is_empty() {
        return sent;
    }
    let fresh = match out.tokens.refresh(&grant, &token).await {
        Ok(t) => t,
        Err(e) => {
            for &b in &refused {
                sent[b] = Sent::Settled(e.outcome(), Some(401));
            }
            return sent;
        }
    };
    let secrets = authorized(target.secrets, &fresh);
    let with_fresh = Target {
        secrets: &secrets,
        ..*target
    };
    let again = post(out, connector, &with_fresh, batches, &refused).await;
    for (b, s) in refused.into_iter().zip(again) {
        sent[b] = match s {
            Sent::Answered(r) if r.status == 401 => {
                let why = match connector.classify(&batches[b], &r) {
                    Outcome::Permanent { reason } | Outcome::Retry { reason, .. } => reason,
                    _ => "HTTP 401".into(),
                };
                let reason = format!(
                    "the API refused an access token issued just before for \
                     secrets.refresh_token ({why}): authorize the app again with the scopes \
                     the API needs and replace secrets.refresh_token"
                );
                Sent::Settled(Outcome::Permanent { reason }, Some(401))
            }
            other => other,
        };
    }
    sent
}

/// Builds and sends the batches `which` of `batches`, several at once; what became of each,
/// in the order of `which`.
async fn post(
    out: Outlet<'_>,
    connector: &dyn Connector,
    target: &Target<'_>,
    batches: &[Vec<&OpenedItem>],
    which: &[usize],
) -> Vec<Sent> {
    let mut results: Vec<Option<Sent>> = which.iter().map(|_| None).collect();
    let mut tasks = tokio::task::JoinSet::new();
    let mut sending: HashMap<tokio::task::Id, usize> = HashMap::new();
    for (slot, &b) in which.iter().enumerate() {
        let request = match connector.build(target, &batches[b]) {
            Ok(r) => r,
            Err(reason) => {
                results[slot] = Some(Sent::Settled(Outcome::Permanent { reason }, None));
                continue;
            }
        };
        let egress = out.egress.clone();
        let semaphore = out.semaphore.cloned();
        let task = tasks.spawn(async move {
            let _permit = match semaphore {
                Some(s) => s.acquire_owned().await.ok(),
                None => None,
            };
            egress.post(&request).await
        });
        sending.insert(task.id(), slot);
    }
    while let Some(joined) = tasks.join_next_with_id().await {
        let (task, sent) = match joined {
            Ok((task, Ok(response))) => (task, Sent::Answered(response)),
            Ok((task, Err(e))) => (task, Sent::Failed(e)),
            Err(e) => (e.id(), Sent::Panicked),
        };
        if let Some(&slot) = sending.get(&task) {
            results[slot] = Some(sent);
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Sent::Panicked))
        .collect()
}
