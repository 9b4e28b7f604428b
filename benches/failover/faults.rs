//! The fault schedule, the same for both systems: rounds of one leader SIGKILL (wait for a
//! new leader and a new write, stay down a while, restart from the data directory) then
//! one follower SIGKILL (restarted at once). Records when each thing happened; the figures
//! are computed afterwards from these times and the writers' attempts (`report.rs`).

use crate::system::{Probe, System};
use crate::writers::{Clock, Progress};
use std::time::Duration;

/// Between two status polls.
const POLL: Duration = Duration::from_millis(20);

/// Which member was killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The leader.
    Leader,
    /// A follower.
    Follower,
}

impl Kind {
    /// For tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Leader => "leader SIGKILL",
            Kind::Follower => "follower SIGKILL",
        }
    }
}

/// One fault and when things happened (offsets on the bench's clock).
#[derive(Clone, Debug)]
pub struct Fault {
    /// Leader or follower.
    pub kind: Kind,
    /// The member killed.
    pub member: usize,
    /// The SIGKILL.
    pub killed_at: Duration,
    /// When a status poll first showed another member leading (leader kills).
    pub new_leader_at: Option<Duration>,
    /// When the restart was started.
    pub restarted_at: Duration,
    /// When a status poll first showed the restarted member linked, knowing a leader and
    /// applied up to the commit index the leader reported just before the restart
    /// (`done`; `None` when that did not happen within the bound), and each step.
    pub relink: Steps,
    /// End of this fault's window: the next fault's kill, or the end of the run.
    pub window_end: Duration,
}

/// The schedule's knobs.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Rounds (one leader kill and one follower kill each).
    pub rounds: usize,
    /// How long a killed leader stays down after a new write went through.
    pub down: Duration,
    /// Quiet time after a restarted member relinked, before the next fault.
    pub settle: Duration,
    /// Bound on every wait (a leader, a new write, a relink).
    pub bound: Duration,
}

/// Probes every member at once.
pub async fn probe_all<S: System>(sys: &S) -> Vec<Option<Probe>> {
    let handles: Vec<_> = (0..sys.len()).map(|i| tokio::spawn(sys.probe(i))).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.ok().flatten());
    }
    out
}

/// Waits until every running member answers and names the same leader, which says it
/// leads; returns its index and status.
pub async fn find_leader<S: System>(
    sys: &mut S,
    bound: Duration,
) -> Result<(usize, Probe), String> {
    let started = tokio::time::Instant::now();
    let mut last = Vec::new();
    while started.elapsed() < bound {
        let running = sys.running();
        let probes = probe_all(sys).await;
        if let Some(found) = agreed_leader(&running, &probes) {
            return Ok(found);
        }
        last = probes;
        tokio::time::sleep(POLL).await;
    }
    Err(format!(
        "{}: no leader all running members agree on within {bound:?}; last: {}",
        sys.name(),
        describe(&last)
    ))
}

fn agreed_leader(running: &[bool], probes: &[Option<Probe>]) -> Option<(usize, Probe)> {
    let mut leader: Option<&str> = None;
    for (i, p) in probes.iter().enumerate() {
        match p {
            Some(p) => {
                let l = p.leader.as_deref()?;
                if leader.is_some_and(|x| x != l) {
                    return None;
                }
                leader = Some(l);
            }
            None if running[i] => return None,
            None => {}
        }
    }
    let leader = leader?;
    probes.iter().enumerate().find_map(|(i, p)| {
        p.as_ref()
            .filter(|p| p.id == leader && p.leads)
            .map(|p| (i, p.clone()))
    })
}

fn describe(probes: &[Option<Probe>]) -> String {
    probes
        .iter()
        .enumerate()
        .map(|(i, p)| match p {
            Some(p) => format!(
                "#{i}: leads {} leader {} commit {} applied {} linked {}",
                p.leads,
                p.leader.as_deref().unwrap_or("none"),
                p.commit,
                p.applied,
                p.linked
            ),
            None => format!("#{i}: no answer"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Polls the members other than `killed` until one says it leads; the time of that answer.
async fn new_leader<S: System>(
    sys: &S,
    killed: usize,
    clock: Clock,
    bound: Duration,
) -> Option<Duration> {
    let started = tokio::time::Instant::now();
    while started.elapsed() < bound {
        let probes = probe_all(sys).await;
        let now = clock.now();
        let led = probes
            .iter()
            .enumerate()
            .any(|(i, p)| i != killed && p.as_ref().is_some_and(|p| p.leads));
        if led {
            return Some(now);
        }
        tokio::time::sleep(POLL).await;
    }
    None
}

/// When a restarted member first showed each sign of life (clock offsets), so a slow
/// relink shows which step took the time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Steps {
    /// Its status answered.
    pub answered: Option<Duration>,
    /// It knew a leader.
    pub knew_leader: Option<Duration>,
    /// It was linked ([`Probe::linked`]).
    pub linked: Option<Duration>,
    /// It had applied the target commit index.
    pub caught_up: Option<Duration>,
    /// All of these at once: relinked.
    pub done: Option<Duration>,
}

impl Steps {
    /// "answered +0.12 s, leader +0.40 s, ..." from `from`.
    pub fn describe(&self, from: Duration) -> String {
        let at = |t: Option<Duration>| match t {
            Some(t) => format!("+{:.2} s", t.saturating_sub(from).as_secs_f64()),
            None => "never".into(),
        };
        format!(
            "answered {}, knew a leader {}, linked {}, caught up {}",
            at(self.answered),
            at(self.knew_leader),
            at(self.linked),
            at(self.caught_up)
        )
    }
}

/// Polls member `i` until it is linked, knows a leader and applied `commit`.
async fn relinked<S: System>(
    sys: &S,
    i: usize,
    commit: u64,
    clock: Clock,
    bound: Duration,
) -> Steps {
    let started = tokio::time::Instant::now();
    let mut steps = Steps::default();
    while started.elapsed() < bound {
        if let Some(p) = sys.probe(i).await {
            let now = clock.now();
            let mark = |step: &mut Option<Duration>, seen: bool| {
                if seen && step.is_none() {
                    *step = Some(now);
                }
            };
            mark(&mut steps.answered, true);
            mark(&mut steps.knew_leader, p.leader.is_some());
            mark(&mut steps.linked, p.linked);
            mark(&mut steps.caught_up, p.applied >= commit);
            if p.linked && p.leader.is_some() && p.applied >= commit {
                steps.done = Some(now);
                return steps;
            }
        }
        tokio::time::sleep(POLL).await;
    }
    steps
}

/// Waits until a write sent at or after `t` was acknowledged (bounded).
async fn new_write(progress: &Progress, t: Duration, bound: Duration) -> bool {
    let started = tokio::time::Instant::now();
    while started.elapsed() < bound {
        if progress.ok_started_since(t) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

fn secs(d: Option<Duration>, from: Duration) -> String {
    match d {
        Some(t) => format!("{:.2} s", t.saturating_sub(from).as_secs_f64()),
        None => "never (bound)".into(),
    }
}

/// Runs the schedule against `sys` while the writers write; returns the faults in order.
pub async fn run<S: System>(
    sys: &mut S,
    clock: Clock,
    progress: &Progress,
    schedule: Schedule,
) -> Result<Vec<Fault>, String> {
    let name = sys.name();
    let bound = schedule.bound;
    let mut faults = Vec::new();
    for round in 0..schedule.rounds {
        // The leader.
        let (leader, _) = find_leader(sys, bound).await?;
        let killed_at = clock.now();
        sys.kill(leader)?;
        let new_leader_at = new_leader(sys, leader, clock, bound).await;
        let Some(elected) = new_leader_at else {
            return Err(format!(
                "{name} round {round}: no new leader within {bound:?} after killing #{leader}"
            ));
        };
        if !new_write(progress, killed_at, bound).await {
            return Err(format!(
                "{name} round {round}: no write sent after the leader's kill succeeded within {bound:?}"
            ));
        }
        tokio::time::sleep(schedule.down).await;
        let (_, now_leading) = find_leader(sys, bound).await?;
        let restarted_at = clock.now();
        sys.restart(leader)?;
        let relink = relinked(sys, leader, now_leading.commit, clock, bound).await;
        println!(
            "  {name} round {round}: SIGKILL leader #{leader}: new leader after {}; restarted after {:.2} s, relinked {} after its restart ({})",
            secs(Some(elected), killed_at),
            restarted_at.saturating_sub(killed_at).as_secs_f64(),
            secs(relink.done, restarted_at),
            relink.describe(restarted_at)
        );
        faults.push(Fault {
            kind: Kind::Leader,
            member: leader,
            killed_at,
            new_leader_at,
            restarted_at,
            relink,
            window_end: Duration::ZERO,
        });
        tokio::time::sleep(schedule.settle).await;

        // A follower, the two taking turns.
        let (leader, status) = find_leader(sys, bound).await?;
        let followers: Vec<usize> = (0..sys.len()).filter(|&i| i != leader).collect();
        let victim = followers[round % followers.len()];
        let killed_at = clock.now();
        sys.kill(victim)?;
        let restarted_at = clock.now();
        sys.restart(victim)?;
        let relink = relinked(sys, victim, status.commit, clock, bound).await;
        let (after, after_status) = find_leader(sys, bound).await?;
        println!(
            "  {name} round {round}: SIGKILL follower #{victim}, restarted at once: relinked {} after its restart ({}); leader #{leader} term {} before, #{after} term {} after",
            secs(relink.done, restarted_at),
            relink.describe(restarted_at),
            status.term,
            after_status.term
        );
        faults.push(Fault {
            kind: Kind::Follower,
            member: victim,
            killed_at,
            new_leader_at: None,
            restarted_at,
            relink,
            window_end: Duration::ZERO,
        });
        tokio::time::sleep(schedule.settle).await;
    }
    let end = clock.now();
    let next_kills: Vec<Duration> = faults.iter().skip(1).map(|f| f.killed_at).collect();
    for (f, next) in faults.iter_mut().zip(next_kills.into_iter().chain([end])) {
        f.window_end = next;
    }
    Ok(faults)
}
