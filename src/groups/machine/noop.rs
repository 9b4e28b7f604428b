//! `NoOp`: the state machine of a group joined only to follow its leader and members.

use super::StateMachine;
use crate::groups::replay::LogReplaySync;
use crate::primitives::Digest;
use crate::UniqueId;

/// Applies nothing, answers `()`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoOp;

impl StateMachine for NoOp {
    type Command = ();
    type Query = ();
    type QueryResult = ();
    type StateSync = LogReplaySync<NoOp>;

    fn signature(&self) -> UniqueId {
        Digest::of(b"tessera/noop-state-machine/v1")
    }

    fn apply(&mut self, _: (), _: &dyn super::ApplyContext) {}

    fn query(&self, _: ()) {}

    fn state_sync(&self) -> LogReplaySync<NoOp> {
        LogReplaySync::default()
    }
}
