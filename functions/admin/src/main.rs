//! The `admin` Lambda: wiring only.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracklayer_lambda::init_telemetry();
    let config = tracklayer_lambda::config_or_exit("admin");
    let stack = tracklayer_lambda::AwsStack::load(config).await;
    lambda_http::run(tracklayer_admin::app(&stack)?).await
}
