//! One mapping from AWS SDK errors to the ports' error classes (DESIGN.md § Conventions):
//! transient (retry), permanent (reject), conflict (a condition failed), not found.

use std::error::Error as StdError;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use tracklayer_core::error::StoreError;

/// Error codes that mean "the service is busy or briefly unwell": try again later.
const TRANSIENT_CODES: &[&str] = &[
    // DynamoDB
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
    // SQS
    "RequestThrottled",
    "ThrottlingException",
    "OverLimit",
    "KmsThrottled",
    "InternalError",
    "ServiceUnavailable",
    "AWS.SimpleQueueService.ServiceUnavailable",
    // KMS, SES
    "KMSInternalException",
    "KMSInternal",
    "DependencyTimeoutException",
    "LimitExceededException",
    "TooManyRequestsException",
    // SES: the account's sending is paused until an operator resumes it.
    "SendingPausedException",
];

/// The class of a failed AWS call, decided once for every adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// No answer, a throttle, or a 5xx: retry.
    Transient,
    /// A conditional write lost (`ConditionalCheckFailedException`).
    ConditionFailed,
    /// The service answered with a modeled client error: retrying will not help.
    Permanent,
}

/// The error code of an SDK error, if the service sent one.
pub(crate) fn code<E>(err: &SdkError<E, HttpResponse>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

pub(crate) fn classify<E>(err: &SdkError<E, HttpResponse>) -> Class
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Class::Transient
        }
        SdkError::ConstructionFailure(_) => Class::Permanent,
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            match e.err().code() {
                Some("ConditionalCheckFailedException") => Class::ConditionFailed,
                Some(c) if TRANSIENT_CODES.contains(&c) => Class::Transient,
                _ if status >= 500 || status == 429 => Class::Transient,
                _ => Class::Permanent,
            }
        }
        // `SdkError` is non-exhaustive: an unknown kind is not worth a retry storm.
        _ => Class::Permanent,
    }
}

/// Maps an SDK error to a `StoreError`, keeping it as the source. A failed condition becomes
/// `Conflict(context)`: callers that mean "not found" by a condition map it themselves.
pub(crate) fn store<E>(context: &'static str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match classify(&err) {
        Class::Transient => StoreError::transient(context, err),
        Class::ConditionFailed => StoreError::Conflict(context),
        Class::Permanent => StoreError::permanent(context, err),
    }
}

/// A conditional write's answer: whether its condition held (and it wrote), or the store
/// error of any other failure.
pub(crate) fn condition_held<T, E>(
    context: &'static str,
    sent: Result<T, SdkError<E, HttpResponse>>,
) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match sent {
        Ok(_) => Ok(true),
        Err(e) => match store(context, e) {
            StoreError::Conflict(_) => Ok(false),
            other => Err(other),
        },
    }
}

/// A conditional write on an existing item (`attribute_exists(pk)`): a condition that does
/// not hold means the item is missing, [`StoreError::NotFound`] naming `what`.
pub(crate) fn on_existing<T, E>(
    context: &'static str,
    what: &'static str,
    sent: Result<T, SdkError<E, HttpResponse>>,
) -> Result<(), StoreError>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    if condition_held(context, sent)? {
        Ok(())
    } else {
        Err(StoreError::NotFound(what))
    }
}

/// A stored item that does not decode.
pub(crate) fn corrupt(context: &'static str, what: impl Into<String>) -> StoreError {
    StoreError::corrupt(context, what.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_dynamodb::types::error::{
        ConditionalCheckFailedException, ProvisionedThroughputExceededException,
        ResourceNotFoundException,
    };
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;

    /// The error metadata the SDK's deserializer sets from the response.
    fn meta(code: &str) -> aws_smithy_types::error::ErrorMetadata {
        aws_smithy_types::error::ErrorMetadata::builder()
            .code(code)
            .build()
    }

    /// A modeled `PutItem` exception as the service returns it: status 400, its name as code.
    macro_rules! modeled {
        ($exception:ident, $message:expr) => {
            service(
                PutItemError::$exception(
                    $exception::builder()
                        .message($message)
                        .meta(meta(stringify!($exception)))
                        .build(),
                ),
                400,
            )
        };
    }

    fn service(err: PutItemError, status: u16) -> SdkError<PutItemError, HttpResponse> {
        SdkError::service_error(
            err,
            Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty()),
        )
    }

    #[test]
    fn a_failed_condition_is_a_conflict() {
        let err = modeled!(
            ConditionalCheckFailedException,
            "The conditional request failed"
        );
        assert!(matches!(store("put", err), StoreError::Conflict("put")));
    }

    #[test]
    fn throttling_is_transient_and_keeps_its_source() {
        let err = modeled!(ProvisionedThroughputExceededException, "slow down");
        let mapped = store("put", err);
        assert!(mapped.is_retryable(), "{mapped:?}");
        assert!(StdError::source(&mapped).is_some());
    }

    #[test]
    fn a_missing_table_is_permanent() {
        let err = modeled!(ResourceNotFoundException, "Requested resource not found");
        assert!(matches!(
            store("put", err),
            StoreError::Permanent { context: "put", .. }
        ));
    }

    #[test]
    fn an_unmodeled_server_error_is_transient() {
        let err = service(PutItemError::generic(meta("SomethingBroke")), 503);
        assert!(store("put", err).is_retryable());
    }
}
