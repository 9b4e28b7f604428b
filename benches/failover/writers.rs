//! The load both systems get, by the same code: writer tasks that put unique keys to every
//! member in turn, each write bounded by a short client timeout, a failed write retried at
//! once on the next member, and every attempt recorded (start, end, member, outcome).

use crate::system::{Failure, Target};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pause after an acknowledged write, so a handful of writers load a 2-core machine
/// without starving the members' timers (each writer then does at most ~100 writes/s).
const PAUSE_AFTER_OK: Duration = Duration::from_millis(10);
/// A failed attempt is spaced to at least this from its start before the next one, so
/// writers facing members that refuse at once (down, no leader) do not spin.
const MIN_FAILED_ATTEMPT: Duration = Duration::from_millis(5);
/// Bytes per value.
const VALUE_BYTES: usize = 100;

/// Times in the bench are offsets from one instant taken at its start.
#[derive(Clone, Copy, Debug)]
pub struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub fn start() -> Self {
        Clock(Instant::now())
    }

    /// Time since the start.
    pub fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// One write attempt.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// When it was sent (clock offset).
    pub start: Duration,
    /// When its answer or failure came.
    pub end: Duration,
    /// The member it was sent to.
    pub member: usize,
    /// `None` when acknowledged.
    pub failure: Option<Failure>,
    /// The key written (for the read-back check).
    pub key: String,
}

/// Shared between the writers and the fault schedule.
#[derive(Debug)]
pub struct Progress {
    /// Set to stop the writers.
    pub stop: AtomicBool,
    /// The latest start (µs on the clock) of any acknowledged write: the schedule waits on
    /// it for "a write sent after the fault succeeded".
    pub newest_ok_start_us: AtomicU64,
}

impl Progress {
    /// Nothing written yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Progress {
            stop: AtomicBool::new(false),
            newest_ok_start_us: AtomicU64::new(0),
        })
    }

    /// Whether a write sent at or after `t` was acknowledged.
    pub fn ok_started_since(&self, t: Duration) -> bool {
        self.newest_ok_start_us.load(Ordering::SeqCst) >= micros(t)
    }
}

fn micros(t: Duration) -> u64 {
    u64::try_from(t.as_micros()).unwrap_or(u64::MAX)
}

/// The value every write of writer `w` carries for its `n`th key.
pub fn value_of(w: usize, n: u64) -> Vec<u8> {
    let mut v = format!("writer {w} write {n} ").into_bytes();
    v.resize(VALUE_BYTES, b'.');
    v
}

/// One attempt of writer `w`'s `n`th write, to `target`; an acknowledgement raises
/// `progress.newest_ok_start_us`.
async fn attempt(
    w: usize,
    n: u64,
    member: usize,
    target: &Target,
    clock: Clock,
    progress: &Progress,
) -> Attempt {
    let key = format!("failover/w{w}/{n:08}");
    let value = value_of(w, n);
    let start = clock.now();
    let failure = target.put(&key, &value).await.err();
    let end = clock.now();
    if failure.is_none() {
        progress
            .newest_ok_start_us
            .fetch_max(micros(start), Ordering::SeqCst);
    }
    Attempt {
        start,
        end,
        member,
        failure,
        key,
    }
}

/// Writer `w`: attempt `n` goes to member `(n + w) % members`, key `failover/w{w}/{n}`,
/// until `progress.stop` is set. Returns every attempt.
pub async fn writer(
    w: usize,
    targets: Vec<Target>,
    clock: Clock,
    progress: Arc<Progress>,
) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    let mut n: u64 = 0;
    while !progress.stop.load(Ordering::SeqCst) {
        let member = (n as usize + w) % targets.len();
        let a = attempt(w, n, member, &targets[member], clock, &progress).await;
        n += 1;
        let spent = a.end.saturating_sub(a.start);
        let ok = a.failure.is_none();
        attempts.push(a);
        if ok {
            tokio::time::sleep(PAUSE_AFTER_OK).await;
        } else if spent < MIN_FAILED_ATTEMPT {
            tokio::time::sleep(MIN_FAILED_ATTEMPT - spent).await;
        }
    }
    attempts
}

/// The paced writer (number `w`, after the closed-loop ones): starts one write every
/// `pace` whatever the answers, to the members in turn, each in its own task, at most
/// `in_flight` at once. Closed-loop writers facing a dead leader all hang until their
/// client timeout and retry together, so after a fault they probe the cluster only once
/// per timeout; the paced writes keep a fresh write starting every `pace`, which sets the
/// resolution of "first new write" and of the gaps.
pub async fn paced(
    w: usize,
    targets: Vec<Target>,
    pace: Duration,
    in_flight: usize,
    clock: Clock,
    progress: Arc<Progress>,
) -> Vec<Attempt> {
    let targets = Arc::new(targets);
    let permits = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut attempts = Vec::new();
    let mut ticks = tokio::time::interval(pace);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    while !progress.stop.load(Ordering::SeqCst) {
        ticks.tick().await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let member = n as usize % targets.len();
        let (targets, progress) = (targets.clone(), progress.clone());
        tasks.spawn(async move {
            let a = attempt(w, n, member, &targets[member], clock, &progress).await;
            drop(permit);
            a
        });
        n += 1;
        while let Some(done) = tasks.try_join_next() {
            attempts.extend(done.ok());
        }
    }
    while let Some(done) = tasks.join_next().await {
        attempts.extend(done.ok());
    }
    attempts
}

/// Parses the writer index and write number back out of a key.
pub fn parse_key(key: &str) -> Option<(usize, u64)> {
    let rest = key.strip_prefix("failover/w")?;
    let (w, n) = rest.split_once('/')?;
    Some((w.parse().ok()?, n.parse().ok()?))
}
