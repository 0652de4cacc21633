//! The `dsr` Lambda: wiring only.

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use tracklayer_dsr::{Housekeeping, ScheduledEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracklayer_lambda::init_telemetry();
    let config = tracklayer_lambda::config_or_exit("dsr");
    let stack = tracklayer_lambda::AwsStack::load(config).await;
    let work = Arc::new(Housekeeping::new(&stack));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ScheduledEvent>| {
        let work = work.clone();
        async move { Ok::<_, lambda_runtime::Error>(work.handle(event.context.deadline()).await) }
    }))
    .await
}
