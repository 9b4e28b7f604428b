//! The replay provider: answers availability and serves committed entries from the log.

use super::message::ReplayMessage;
use super::stats::ReplayStats;
use super::{LogReplaySync, MAX_ANSWER_BYTES};
use crate::groups::machine::{StateMachine, StateSyncProvider, SyncProviderContext};
use crate::groups::raft::{LogReader, Payload};
use crate::groups::Index;
use crate::PeerId;
use std::marker::PhantomData;
use std::sync::Arc;

/// Serves committed entries to replay sessions.
pub struct ReplayProvider<M> {
    batch_size: u64,
    stats: Arc<ReplayStats>,
    _machine: PhantomData<fn() -> M>,
}

impl<M> ReplayProvider<M> {
    pub(super) fn new(batch_size: u64, stats: Arc<ReplayStats>) -> Self {
        ReplayProvider {
            batch_size,
            stats,
            _machine: PhantomData,
        }
    }
}

fn payload_len(p: &Payload) -> usize {
    match p {
        Payload::Command(bytes) => bytes.len() + 16,
        Payload::Noop => 16,
        Payload::Config(m) => 16 + 40 * m.members().count(),
    }
}

impl<M: StateMachine<StateSync = LogReplaySync<M>>> StateSyncProvider for ReplayProvider<M> {
    type Owner = LogReplaySync<M>;

    fn receive(
        &mut self,
        message: ReplayMessage,
        sender: PeerId,
        cx: &mut dyn SyncProviderContext<LogReplaySync<M>>,
    ) -> Result<(), ReplayMessage> {
        let committed = cx.committed().index();
        let log = cx.log();
        let first = log.available().start().next();
        let answer = match message {
            ReplayMessage::Availability => ReplayMessage::Available { first, committed },
            ReplayMessage::Fetch { from, to } => {
                let to = to.min(committed).min(Index(
                    from.0.saturating_add(self.batch_size.saturating_sub(1)),
                ));
                let mut entries = if from < first || from > to {
                    Vec::new()
                } else {
                    match LogReader::entries(log, from, to) {
                        Ok(entries) => entries,
                        Err(err) => {
                            tracing::warn!(%err, "replay provider cannot read the log");
                            Vec::new()
                        }
                    }
                };
                // Keep the answer well under the frame cap, whatever the entry sizes.
                let mut bytes = 0;
                let keep = entries
                    .iter()
                    .take_while(|e| {
                        bytes += payload_len(&e.payload);
                        bytes <= MAX_ANSWER_BYTES
                    })
                    .count()
                    .max(1)
                    .min(entries.len());
                entries.truncate(keep);
                self.stats.served(entries.len());
                ReplayMessage::Entries {
                    from,
                    entries,
                    committed,
                }
            }
            other => return Err(other),
        };
        cx.send_to(sender, answer).map_err(|err| {
            tracing::warn!(%err, "replay provider cannot encode an answer");
            ReplayMessage::Availability
        })
    }
}
