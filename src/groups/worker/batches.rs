//! How committed entries become apply batches: commands are decoded and grouped, a batch
//! ends at a sync barrier (so the provider sees the state at exactly the barrier's index)
//! or at the end of the entries, configuration entries are passed on in order, and no-ops
//! are skipped. Pure, so its rules are tested without a worker.

use crate::groups::raft::{Entry, Membership, Payload};
use crate::groups::{Cursor, Index};
use crate::primitives::codec;
use serde::de::DeserializeOwned;

/// One thing the worker does with committed entries, in order.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ApplyStep<C> {
    /// A configuration entry was committed: it is the applied membership from now on.
    /// Commands before it that are not yet applied stay in the next batch (the membership
    /// only matters to the provider at a barrier, which always ends its batch).
    Config(Membership),
    /// Apply these commands (at `indices`) in one batch ending at `end`; `barrier` when
    /// the last one is a sync barrier (tell the provider after applying it). `bytes`: the
    /// command payload bytes since the previous batch (undecodable commands included:
    /// every member counts the same bytes); the last batch, not a barrier's, counts
    /// everything left.
    Batch {
        commands: Vec<C>,
        indices: Vec<Index>,
        end: Cursor,
        barrier: bool,
        bytes: u64,
    },
}

/// The steps for `entries`, and the command payload bytes no batch counted (commands
/// that did not decode, after the last barrier, with no batch after them).
pub(super) fn plan<C: DeserializeOwned>(
    entries: Vec<Entry>,
    is_barrier: impl Fn(&C) -> bool,
) -> (Vec<ApplyStep<C>>, u64) {
    let mut steps = Vec::new();
    let mut bytes_total = 0u64;
    let mut commands = Vec::new();
    let mut indices = Vec::new();
    let mut batch_end = None;
    for entry in entries {
        let at = entry.cursor();
        let bytes = match entry.payload {
            Payload::Command(bytes) => bytes,
            Payload::Config(membership) => {
                steps.push(ApplyStep::Config(membership));
                continue;
            }
            Payload::Noop => continue,
        };
        bytes_total += bytes.len() as u64;
        let command = match codec::decode::<C>(&bytes) {
            Ok(command) => command,
            // Every member runs the same machine (its signature is in the group id), so
            // every member skips the same entry: state stays identical.
            Err(err) => {
                tracing::error!(
                    index = at.index().0,
                    %err,
                    "committed command does not decode; skipped"
                );
                continue;
            }
        };
        let barrier = is_barrier(&command);
        commands.push(command);
        indices.push(at.index());
        batch_end = Some(at);
        if barrier {
            steps.push(ApplyStep::Batch {
                commands: std::mem::take(&mut commands),
                indices: std::mem::take(&mut indices),
                end: at,
                barrier: true,
                bytes: std::mem::take(&mut bytes_total),
            });
            batch_end = None;
        }
    }
    if let Some(end) = batch_end {
        steps.push(ApplyStep::Batch {
            commands,
            indices,
            end,
            barrier: false,
            bytes: std::mem::take(&mut bytes_total),
        });
    }
    (steps, bytes_total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::Term;

    fn command(index: u64, value: u32) -> Entry {
        Entry {
            term: Term(1),
            index: Index(index),
            payload: Payload::Command(codec::encode(&value).unwrap()),
        }
    }

    fn other(index: u64, payload: Payload) -> Entry {
        Entry {
            term: Term(1),
            index: Index(index),
            payload,
        }
    }

    fn at(index: u64) -> Cursor {
        Cursor(Term(1), Index(index))
    }

    /// 0 is the barrier.
    fn barrier(c: &u32) -> bool {
        *c == 0
    }

    /// Encoded size of one u32 command.
    fn size() -> u64 {
        codec::encode(&10u32).unwrap().len() as u64
    }

    #[test]
    fn commands_without_a_barrier_are_one_batch_and_noops_are_skipped() {
        let entries = vec![command(1, 10), other(2, Payload::Noop), command(3, 11)];
        let (steps, rest) = plan::<u32>(entries, barrier);
        assert_eq!(
            steps,
            vec![ApplyStep::Batch {
                commands: vec![10, 11],
                indices: vec![Index(1), Index(3)],
                end: at(3),
                barrier: false,
                bytes: 2 * size(),
            }]
        );
        assert_eq!(rest, 0);
    }

    #[test]
    fn a_barrier_ends_its_batch_and_the_rest_follows_in_another() {
        let entries = vec![command(1, 10), command(2, 0), command(3, 11), command(4, 0)];
        let (steps, _) = plan::<u32>(entries, barrier);
        assert_eq!(
            steps,
            vec![
                ApplyStep::Batch {
                    commands: vec![10, 0],
                    indices: vec![Index(1), Index(2)],
                    end: at(2),
                    barrier: true,
                    bytes: 2 * size(),
                },
                ApplyStep::Batch {
                    commands: vec![11, 0],
                    indices: vec![Index(3), Index(4)],
                    end: at(4),
                    barrier: true,
                    bytes: 2 * size(),
                },
            ]
        );
    }

    #[test]
    fn a_configuration_comes_in_order_without_cutting_the_batch() {
        let membership = Membership::default();
        let entries = vec![
            command(1, 10),
            other(2, Payload::Config(membership.clone())),
            command(3, 0),
        ];
        let (steps, _) = plan::<u32>(entries, barrier);
        assert_eq!(
            steps,
            vec![
                ApplyStep::Config(membership),
                ApplyStep::Batch {
                    commands: vec![10, 0],
                    indices: vec![Index(1), Index(3)],
                    end: at(3),
                    barrier: true,
                    bytes: 2 * size(),
                },
            ]
        );
    }

    #[test]
    fn an_undecodable_command_is_skipped_but_its_bytes_are_counted() {
        let entries = vec![
            other(1, Payload::Command(vec![0xff; 9])),
            command(2, 10),
            other(3, Payload::Command(vec![0xff; 5])),
        ];
        let (steps, rest) = plan::<u32>(entries, barrier);
        assert_eq!(
            steps,
            vec![ApplyStep::Batch {
                commands: vec![10],
                indices: vec![Index(2)],
                end: at(2),
                barrier: false,
                bytes: 9 + size() + 5,
            }]
        );
        assert_eq!(rest, 0);
        // Undecodable commands after a barrier's batch, with nothing to apply after them.
        let entries = vec![command(1, 0), other(2, Payload::Command(vec![0xff; 5]))];
        let (steps, rest) = plan::<u32>(entries, barrier);
        assert_eq!(steps.len(), 1);
        assert_eq!(rest, 5);
    }

    #[test]
    fn nothing_to_apply_gives_no_steps() {
        let (steps, bytes) = plan::<u32>(vec![other(1, Payload::Noop)], barrier);
        assert!(steps.is_empty());
        assert_eq!(bytes, 0);
    }
}
