//! Engine calls whose answers are big to decode run on the multi-thread
//! runtime, not on the arbiter thread that runs every actor.
//!
//! Why: a container list is a JSON array of full container summaries
//! (labels, ports, mounts, networks), and every engine is listed every
//! `resync_every` and at start. At 100,000 containers on 1,000 engines
//! that is 10,000 summaries decoded a second in steady state, and 100,000
//! at once on a restart: perf put the decoding at 9% of the arbiter
//! thread during a rebind, while that thread was the one holding the
//! deploy and the rebind back (issue 18). The stats rounds were moved the
//! same way before (`DockerHost::start_stats_round`).

use std::future::Future;

use tokio_util::task::AbortOnDropHandle;

use super::HostError;

/// Runs `call` on the runtime's worker threads and waits for its end.
/// Dropping the returned future (an actor stopping, a timeout) aborts the
/// call, as dropping the call itself would. `Err` only if it panicked.
pub async fn offload<F>(call: F) -> Result<F::Output, tokio::task::JoinError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    AbortOnDropHandle::new(tokio::spawn(call)).await
}

/// [`offload`] for an engine call: a panic in it is an error of `operation`.
pub async fn offload_call<T, F>(operation: &'static str, call: F) -> Result<T, HostError>
where
    F: Future<Output = Result<T, HostError>> + Send + 'static,
    T: Send + 'static,
{
    offload(call)
        .await
        .unwrap_or_else(|e| Err(HostError::local(operation, e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn the_answer_comes_from_another_thread() {
        let here = std::thread::current().id();
        let there = offload(async { std::thread::current().id() })
            .await
            .unwrap();
        assert_ne!(here, there);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn dropping_the_wait_aborts_the_call() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let wait = offload(async move {
            // Held until the call ends: its end closes `rx`.
            let _tx = tx;
            std::future::pending::<()>().await
        });
        let polled = tokio::time::timeout(std::time::Duration::from_millis(10), wait).await;
        assert!(polled.is_err(), "the call never answers");
        // The timeout dropped the wait: the call is aborted, its sender dropped.
        assert!(rx.await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_panicking_call_is_an_error_naming_the_operation() {
        let e = offload_call::<(), _>("list containers", async { panic!("boom") })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("list containers"), "{e}");
    }
}
