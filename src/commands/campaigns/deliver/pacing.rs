//! The rate limiter: sends spaced `1/rate` apart across all connections,
//! each given the next free slot, so that no second of the run holds more
//! than `rate` sends and an idle pause is not made up in a burst.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(super) struct Pace {
    /// The gap between two sends; `None`: no limit.
    period: Option<Duration>,
    /// The first free slot.
    next: Mutex<Instant>,
}

impl Pace {
    /// `rate` sends a second at most; 0 means no limit.
    pub(super) fn new(rate: f64) -> Self {
        Self {
            // Rounded up to the nanosecond: rounded down, `rate` gaps could
            // add up to a hair under a second and let one more through.
            period: (rate > 0.0).then(|| Duration::from_nanos((1e9 / rate).ceil() as u64)),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this send's slot.
    pub(super) async fn wait(&self) {
        if let Some(slot) = self.reserve(Instant::now()) {
            tokio::time::sleep_until(tokio::time::Instant::from_std(slot)).await;
        }
    }

    /// The slot of a send asked for at `now` (`None`: no limit): the first
    /// free one, never earlier than `now`; the one after is a period later.
    fn reserve(&self, now: Instant) -> Option<Instant> {
        let period = self.period?;
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let slot = (*next).max(now);
        *next = slot + period;
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most slots found in any one-second window `[t, t + 1 s)`.
    fn busiest_second(slots: &mut [Instant]) -> usize {
        slots.sort();
        (0..slots.len())
            .map(|i| {
                slots[i..]
                    .iter()
                    .take_while(|s| **s < slots[i] + Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn no_second_holds_more_than_the_rate() {
        for rate in [1.0, 3.0, 7.0, 10.0, 14.0, 250.0] {
            let pace = Pace::new(rate);
            let start = Instant::now();
            // Eight connections asking as soon as their last send is done,
            // some of them late by a varying few milliseconds.
            let mut free = [start; 8];
            let mut slots = Vec::new();
            for i in 0..(rate as usize * 5) {
                let worker = i % free.len();
                let asked = free[worker] + Duration::from_millis((i % 5) as u64);
                let slot = pace.reserve(asked).unwrap();
                assert!(slot >= asked, "a slot before it was asked for");
                free[worker] = slot;
                slots.push(slot);
            }
            assert_eq!(busiest_second(&mut slots), rate as usize, "rate {rate}");
        }
    }

    #[test]
    fn sends_asked_at_once_go_one_period_apart_and_no_later() {
        let pace = Pace::new(10.0);
        let start = Instant::now();
        let slots: Vec<Instant> = (0..30).map(|_| pace.reserve(start).unwrap()).collect();
        assert_eq!(slots[0], start, "the first send waits for nothing");
        for (k, slot) in slots.iter().enumerate() {
            let due = start + Duration::from_millis(100) * k as u32;
            // Late by at most the rounding of the period (1 ns a slot).
            assert!(*slot >= due && *slot - due <= Duration::from_nanos(k as u64));
        }
    }

    #[test]
    fn an_idle_pause_is_not_made_up_in_a_burst() {
        let pace = Pace::new(10.0);
        let start = Instant::now();
        pace.reserve(start).unwrap();
        let later = start + Duration::from_secs(5);
        assert_eq!(pace.reserve(later), Some(later));
        assert_eq!(
            pace.reserve(later),
            Some(later + Duration::from_millis(100))
        );
    }

    #[test]
    fn no_rate_means_no_wait() {
        let pace = Pace::new(0.0);
        assert_eq!(pace.reserve(Instant::now()), None);
    }

    #[tokio::test]
    async fn waiting_takes_the_time_the_rate_asks_and_not_much_more() {
        let pace = std::sync::Arc::new(Pace::new(100.0));
        let started = Instant::now();
        let waits: Vec<_> = (0..4)
            .map(|_| {
                let pace = pace.clone();
                tokio::spawn(async move {
                    for _ in 0..10 {
                        pace.wait().await;
                    }
                })
            })
            .collect();
        for w in waits {
            w.await.unwrap();
        }
        // 40 sends at 100/s: the last at 390 ms.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(390), "{took:?}");
        assert!(took < Duration::from_millis(390 + 600), "{took:?}");
    }
}
