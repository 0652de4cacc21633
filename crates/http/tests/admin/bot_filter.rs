//! `/admin/v1/bot-filter`: whether ingest drops the events of crawlers' user agents.

use super::*;

const BOT_FILTER: &str = "/admin/v1/bot-filter";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

impl App {
    /// `POST /v1/track` with the write key, with Googlebot's user agent in the event.
    async fn track_as_googlebot(&self) -> Value {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/v1/track")
            .header(header::AUTHORIZATION, format!("Bearer {}", self.write_key))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"event": "Order Completed", "userId": "user-1",
                    "context": {"userAgent": GOOGLEBOT}})
                .to_string(),
            ))
            .unwrap();
        let (status, _, v) = self.send(req).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    /// The bot filter setting, read by the admin.
    async fn bot_filter(&self) -> Value {
        self.get(BOT_FILTER).await
    }
}

#[tokio::test]
async fn bot_filtering_is_on_by_default_and_an_admin_turning_it_off_is_audited_and_applied() {
    let app = App::start().await;
    assert_eq!(app.bot_filter().await, json!({"enabled": true}));
    assert_eq!(app.track_as_googlebot().await["bots"], 1);

    let v = app.put(BOT_FILTER, json!({"enabled": false})).await;

    assert_eq!(v, json!({"enabled": false}));
    assert_eq!(
        app.last_security_change().await["bot_filter"],
        json!({"from": true, "to": false})
    );
    assert_eq!(app.track_as_googlebot().await["bots"], 0);
    // Replacing the other security settings leaves it alone.
    app.replace_security(&[], false).await;
    assert_eq!(app.bot_filter().await, json!({"enabled": false}));
}

#[tokio::test]
async fn a_bot_filter_body_that_is_not_a_boolean_is_refused_naming_the_member() {
    let app = App::start().await;

    let (status, _, v) = app
        .as_admin(Method::PUT, BOT_FILTER, Some(json!({"enabled": "no"})))
        .await;

    assert!(status.is_client_error(), "{status}: {v}");
    assert_eq!(v["field"], "enabled", "{v}");
    assert_eq!(app.bot_filter().await, json!({"enabled": true}));
}
