//! How an HTTP request that got no answer fails: the one classification shared by the `http`
//! job kind and the alert deliveries (Slack, webhook), so the same network fault is the same
//! failure whoever met it. A target the policy refuses is a `client` failure (retrying cannot
//! help); a request that could not even be built is `client` too; everything else (timeout,
//! refused or reset connection, DNS, TLS) is `timeout`, which the retry rules back off on.
//!
//! The message never holds the URL (a Slack webhook URL is its secret, a query may carry a
//! token): the error is stripped of it, and the causes below it name no URL.

use crate::error_class::ErrorClass;
use crate::kinds::JobFailure;
use crate::targets;

/// The failure of a request that produced no response.
pub fn transport_failure(error: reqwest::Error) -> JobFailure {
    if let Some(refused) = targets::refusal(&error) {
        return JobFailure::new(ErrorClass::Client, format!("refused: {refused}"));
    }
    let class = if error.is_builder() {
        ErrorClass::Client
    } else {
        ErrorClass::Timeout
    };
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // reqwest's own message is generic ("error sending request"); the cause is in the sources.
    let error = error.without_url();
    let mut message = format!("{what}: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    JobFailure::new(class, message)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn failure_of(url: &str, timeout: Duration) -> JobFailure {
        let error = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .expect("client")
            .post(url)
            .send()
            .await
            .expect_err("no answer");
        transport_failure(error)
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_timeout_failure_without_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let url = format!("http://127.0.0.1:{port}/hook?token=s3cret");
        let failure = failure_of(&url, Duration::from_secs(5)).await;
        assert_eq!(failure.class, ErrorClass::Timeout, "{failure:?}");
        assert!(
            failure.message.starts_with("connection failed: "),
            "{failure:?}"
        );
        assert!(!failure.message.contains("s3cret"), "{failure:?}");
        assert!(!failure.message.contains("/hook"), "{failure:?}");
    }

    #[tokio::test]
    async fn no_answer_in_time_is_a_timeout_failure() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // Accepts and holds the connection, never answering.
        let held = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
        let url = format!("http://127.0.0.1:{port}/slow");
        let failure = failure_of(&url, Duration::from_millis(200)).await;
        assert_eq!(failure.class, ErrorClass::Timeout, "{failure:?}");
        assert!(failure.message.starts_with("timed out: "), "{failure:?}");
        held.abort();
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_built_is_a_client_failure() {
        let failure = failure_of("http://exa mple.com/", Duration::from_secs(1)).await;
        assert_eq!(failure.class, ErrorClass::Client, "{failure:?}");
    }
}
