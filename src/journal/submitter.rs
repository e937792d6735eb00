//! Group commit for job submissions.

use super::{Job, Journal, JournalError, NewJob, Submitted};

type Reply = tokio::sync::oneshot::Sender<Submitted>;

/// Group commit for job submissions: one writer thread takes every submission waiting
/// at that moment and commits them in one transaction, so concurrent clients share an
/// fsync instead of queueing for one each.
#[derive(Clone)]
pub struct Submitter {
    queue: std::sync::mpsc::Sender<(NewJob, Reply)>,
}

/// Most submissions committed together.
const MAX_GROUP: usize = 64;

impl Submitter {
    /// Start the writer thread for `journal`.
    pub fn start(journal: Journal) -> std::io::Result<Submitter> {
        let (queue, rx) = std::sync::mpsc::channel::<(NewJob, Reply)>();
        std::thread::Builder::new()
            .name("journal-submit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(next) => group.push(next),
                            Err(_) => break,
                        }
                    }
                    let (jobs, replies): (Vec<NewJob>, Vec<Reply>) = group.into_iter().unzip();
                    let n = jobs.len();
                    let mut outcomes = journal.submit_batch(jobs);
                    if outcomes.len() != n {
                        let msg = match outcomes.pop() {
                            Some(Err(e)) => e.to_string(),
                            _ => "journal commit failed".to_string(),
                        };
                        outcomes = (0..n)
                            .map(|_| Err(JournalError::Commit(msg.clone())))
                            .collect();
                    }
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(outcome);
                    }
                }
            })?;
        Ok(Submitter { queue })
    }

    /// Submit a job; resolves once it is committed.
    pub async fn submit(&self, new: NewJob) -> Result<(Job, bool), JournalError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue
            .send((new, tx))
            .map_err(|_| JournalError::Commit("the journal writer has stopped".into()))?;
        rx.await
            .map_err(|_| JournalError::Commit("the journal writer has stopped".into()))?
    }
}
