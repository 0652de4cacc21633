//! `GET /admin/v1/stats`: the overview's counts for any role, of the caller's workspace only,
//! over `1h`, `24h` (the default) or `7d`; any other window is a 422 naming `window`.

use super::*;

impl App {
    async fn stats(&self, query: &str, token: &str) -> (StatusCode, Value) {
        let (status, _, v) = self
            .call(
                Method::GET,
                &format!("/admin/v1/stats{query}"),
                Some(token),
                None,
            )
            .await;
        (status, v)
    }
}

#[tokio::test]
async fn a_tracked_event_shows_in_a_viewers_last_hour_with_a_point_every_five_minutes() {
    let app = App::start().await;
    let destination = app.new_destination().await;
    app.tracked_event().await;

    let (status, v) = app.stats("?window=1h", &app.viewer).await;

    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["window"], "1h");
    assert_eq!(v["step_seconds"], 300);
    assert_eq!(v["ingest"]["accepted"], 1, "{v}");
    assert_eq!(v["ingest"]["rejected"], 0, "{v}");
    let row = v["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destination_id"] == destination.as_str())
        .unwrap_or_else(|| panic!("no row for {destination}: {v}"))
        .clone();
    assert_eq!(row["kind"], "webhook");
    assert_eq!(row["received"], 1, "{row}");
    assert_eq!(row["routed"], 1, "{row}");
    assert_eq!(row["series"].as_array().unwrap().len(), 12);
}

#[tokio::test]
async fn the_default_window_is_24_hours_and_7d_has_168_hourly_points() {
    let app = App::start().await;
    app.new_destination().await;

    let (_, day) = app.stats("", &app.admin).await;
    let (_, week) = app.stats("?window=7d", &app.admin).await;

    assert_eq!(day["window"], "24h");
    assert_eq!(day["step_seconds"], 3600);
    assert_eq!(
        week["destinations"][0]["series"].as_array().unwrap().len(),
        168
    );
}

#[tokio::test]
async fn another_workspace_sees_none_of_the_counts() {
    let app = App::start().await;
    app.tracked_event().await;

    let (status, v) = app.stats("?window=1h", &app.other).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["ingest"]["accepted"], 0, "{v}");
}

#[tokio::test]
async fn a_window_other_than_1h_24h_or_7d_is_a_422_naming_window() {
    let app = App::start().await;
    for bad in ["1d", "60m", "7D", "", "x".repeat(40).as_str()] {
        let (status, v) = app.stats(&format!("?window={bad}"), &app.viewer).await;
        let expected = if bad.len() > 16 {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        assert_eq!(status, expected, "{bad}: {v}");
        assert_eq!(v["field"], "window", "{bad}: {v}");
    }
}
