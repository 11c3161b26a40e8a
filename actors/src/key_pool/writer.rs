//! The pool's one writer of key rows: health changes from traffic and operator changes go through
//! the same ordered queue, so a later change never loses to an earlier one that was stored late
//! (an operator's disable cannot be undone by a failure counted just before it).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::domain::{KeyId, KeyStatus};
use crate::ports::{KeyRepo, KeyWrite, PortError};

/// One queued write.
pub(crate) enum Job {
    /// A key's health after the pool changed it; `ack` hears when it is stored (or failed).
    Health {
        key_id: KeyId,
        status: KeyStatus,
        failure_count: i64,
        ack: Option<oneshot::Sender<()>>,
    },
    /// An operator's change; `ack` gets the ids it touched.
    Operator {
        write: KeyWrite,
        ack: oneshot::Sender<Result<Vec<KeyId>, PortError>>,
    },
}

/// The sending end the actor queues on.
#[derive(Clone)]
pub(crate) struct Writer(mpsc::UnboundedSender<Job>);

impl Writer {
    /// Starts the writer task on the current runtime.
    pub(crate) fn spawn(repo: Arc<dyn KeyRepo>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        actix::spawn(run(repo, rx));
        Writer(tx)
    }

    /// Queues a job; false when the writer is gone (the change then stays in memory only).
    pub(crate) fn queue(&self, job: Job) -> bool {
        self.0.send(job).is_ok()
    }
}

async fn run(repo: Arc<dyn KeyRepo>, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = rx.recv().await {
        match job {
            Job::Health {
                key_id,
                status,
                failure_count,
                ack,
            } => {
                if let Err(err) = repo.save_key_health(key_id, status, failure_count).await {
                    tracing::warn!(key_id, error = %err, "Failed to persist key health.");
                }
                if let Some(ack) = ack {
                    let _ = ack.send(());
                }
            }
            Job::Operator { write, ack } => {
                let stored = repo.apply_key_write(&write).await;
                if let Err(err) = &stored {
                    tracing::warn!(error = %err, "Failed to store an operator's key change.");
                }
                let _ = ack.send(stored);
            }
        }
    }
}
