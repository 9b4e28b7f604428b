//! Exponential back-off between reconnection attempts: doubles from `initial` up to `max`,
//! with up to a quarter of jitter taken off so peers that lost each other at the same moment
//! do not redial in lockstep. Reset after a link is established.

use std::time::Duration;

/// The delays between reconnection attempts of one bond.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `initial`, doubles up to `max` (`max` below `initial` is raised to it).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }

    /// The delay before the next attempt, without jitter; doubles the one after.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// [`next_delay`](Self::next_delay) less a random 0–25 %.
    pub fn next_jittered(&mut self) -> Duration {
        let delay = self.next_delay();
        let fraction = getrandom::u32().unwrap_or(0) % 1024;
        delay.saturating_sub(delay / 4 * fraction / 1024)
    }

    /// Back to `initial` (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(700));
        let seen: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(seen, [ms(100), ms(200), ms(400), ms(700), ms(700)]);
        b.reset();
        assert_eq!(b.next_delay(), ms(100));
        let j = b.next_jittered();
        assert!(j <= ms(200) && j >= ms(150), "{j:?}");
    }
}
