//! Natural batching of the delivery handler's database work, as the pool batches its
//! completions: every attempt in this process hands its request (read a delivery, ask the
//! gate, record an attempt) to one writer task, which takes whatever has queued up while its
//! previous batch was in the database (at most [`MAX_BATCH`]) and runs them all in one
//! transaction. Idle, a batch is the one request, at once; busy, fifty attempts share one
//! commit instead of paying fifty.
//!
//! A batch that fails is run again once (a deadlock or a lost connection), then every
//! request of it gets the error. The writer task is started on first use, on the runtime of
//! that caller; if it is gone (its runtime ended), a request runs alone.

use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use crate::kinds::BoxFuture;
use crate::store::StoreError;

/// The most requests in one batch.
pub const MAX_BATCH: usize = 100;

/// Runs one batch: one answer per request, in order.
type Run<Req, Resp> =
    Arc<dyn Fn(Vec<Req>) -> BoxFuture<'static, Result<Vec<Resp>, StoreError>> + Send + Sync>;

/// One queued request and where its answer goes.
type Queued<Req, Resp> = (Req, oneshot::Sender<Result<Resp, String>>);

/// A writer task with its queue (see the module doc); cloning shares it.
pub struct Batcher<Req, Resp> {
    queue: Arc<OnceLock<mpsc::UnboundedSender<Queued<Req, Resp>>>>,
    run: Run<Req, Resp>,
}

impl<Req, Resp> Clone for Batcher<Req, Resp> {
    fn clone(&self) -> Self {
        Batcher {
            queue: self.queue.clone(),
            run: self.run.clone(),
        }
    }
}

impl<Req: Clone + Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// A batcher whose batches `run` runs.
    pub fn new<F>(run: F) -> Self
    where
        F: Fn(Vec<Req>) -> BoxFuture<'static, Result<Vec<Resp>, StoreError>>
            + Send
            + Sync
            + 'static,
    {
        Batcher {
            queue: Arc::new(OnceLock::new()),
            run: Arc::new(run),
        }
    }

    /// Runs `request` in the next batch; the error is the store's, as text.
    pub async fn call(&self, request: Req) -> Result<Resp, String> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(writer(rx, self.run.clone()));
            tx
        });
        let (tx, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError((request, _))) = queue.send((request, tx)) {
            return alone(&self.run, request).await;
        }
        match rx.await {
            Ok(answer) => answer,
            Err(_) => Err("the webhook batch writer stopped".to_owned()),
        }
    }
}

/// One request run by itself (the writer task is gone).
async fn alone<Req: Clone, Resp>(run: &Run<Req, Resp>, request: Req) -> Result<Resp, String> {
    let mut answers = run(vec![request]).await.map_err(|e| e.to_string())?;
    answers
        .pop()
        .ok_or_else(|| "a webhook batch answered nothing".to_owned())
}

async fn writer<Req: Clone, Resp>(
    mut rx: mpsc::UnboundedReceiver<Queued<Req, Resp>>,
    run: Run<Req, Resp>,
) {
    let mut batch: Vec<Queued<Req, Resp>> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let requests: Vec<Req> = batch.iter().map(|(r, _)| r.clone()).collect();
        let mut result = run(requests.clone()).await;
        if let Err(error) = &result {
            tracing::warn!(%error, size = requests.len(), "a webhook batch failed; once more");
            result = run(requests).await;
        }
        match result {
            Ok(answers) if answers.len() == batch.len() => {
                for ((_, tx), answer) in batch.drain(..).zip(answers) {
                    let _ = tx.send(Ok(answer));
                }
            }
            Ok(_) => {
                for (_, tx) in batch.drain(..) {
                    let _ = tx.send(Err("a webhook batch answered the wrong count".to_owned()));
                }
            }
            Err(error) => {
                let text = error.to_string();
                for (_, tx) in batch.drain(..) {
                    let _ = tx.send(Err(text.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn requests_that_queue_up_meanwhile_share_a_batch() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher: Batcher<u32, u32> = Batcher::new(move |requests: Vec<u32>| {
            let seen = seen.clone();
            Box::pin(async move {
                seen.lock().unwrap().push(requests.len());
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Ok(requests.iter().map(|r| r * 2).collect())
            })
        });
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..30u32 {
            let b = batcher.clone();
            tasks.spawn(async move { (i, b.call(i).await) });
        }
        while let Some(done) = tasks.join_next().await {
            let (i, answer) = done.unwrap();
            assert_eq!(answer, Ok(i * 2), "each request gets its own answer");
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 30);
        assert!(sizes.len() < 30, "some requests shared a batch: {sizes:?}");
    }
}
