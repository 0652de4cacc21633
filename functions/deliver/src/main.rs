//! The `deliver` Lambda: wiring only.

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use tracklayer_core::deliver::service::DeliveryConfig;
use tracklayer_deliver::{Deliver, SqsRecords};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracklayer_lambda::init_telemetry();
    let config = tracklayer_lambda::config_or_exit("deliver");
    let stack = tracklayer_lambda::AwsStack::load(config).await;
    let deliver = Arc::new(Deliver::new(&stack, DeliveryConfig::default())?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsRecords>| {
        let deliver = deliver.clone();
        async move {
            deliver
                .handle(event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
