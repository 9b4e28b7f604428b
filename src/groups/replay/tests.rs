use super::*;

#[test]
fn the_batch_size_is_part_of_the_signature() {
    use crate::groups::machine::NoOp;
    let a = LogReplaySync::<NoOp>::default();
    let b = LogReplaySync::<NoOp>::default().with_batch_size(NonZeroU32::new(10).unwrap());
    assert_ne!(a.signature(), b.signature());
    assert_eq!(a.signature(), LogReplaySync::<NoOp>::default().signature());
}
