//! The rate limiter: sends spaced `1/rate` apart across all connections,
//! each given the next free slot, so that no second of the run holds more
//! than `rate` sends and an idle pause is not made up in a burst.
//!
//! The slots alone are not enough: a connection whose slot has passed while
//! the process was not running (a stall, a loaded machine) starts late, and
//! several late ones would start together. So each send is also admitted
//! against the times the last sends really started: it goes only when the
//! `rate`-th send before it started a full second earlier (with a rate under
//! 1, when the one before started a full period earlier).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(super) struct Pace {
    /// The gap between two sends; `None`: no limit.
    period: Option<Duration>,
    /// The first free slot.
    next: Mutex<Instant>,
    /// How many sends may start within `window`.
    burst: usize,
    window: Duration,
    /// When the last `burst` sends started, oldest first.
    started: Mutex<VecDeque<Instant>>,
}

impl Pace {
    /// `rate` sends a second at most; 0 means no limit.
    pub(super) fn new(rate: f64) -> Self {
        // Rounded up to the nanosecond: rounded down, `rate` gaps could
        // add up to a hair under a second and let one more through.
        let period = (rate > 0.0).then(|| Duration::from_nanos((1e9 / rate).ceil() as u64));
        let burst = if rate >= 1.0 {
            rate.floor() as usize
        } else {
            1
        };
        let window = match period {
            Some(p) if rate < 1.0 => p,
            _ => Duration::from_secs(1),
        };
        Self {
            period,
            next: Mutex::new(Instant::now()),
            burst,
            window,
            started: Mutex::new(VecDeque::with_capacity(burst.min(4096))),
        }
    }

    /// Waits for this send's slot, then for the sends before it to leave
    /// room in the last second; the send is counted as started on return.
    pub(super) async fn wait(&self) {
        let Some(slot) = self.reserve(Instant::now()) else {
            return;
        };
        tokio::time::sleep_until(tokio::time::Instant::from_std(slot)).await;
        while let Err(until) = self.admit() {
            tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
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

    /// Starts a send now if the last `burst` sends leave room, or says when
    /// to ask again. The time is read under the lock, so the recorded starts
    /// never hold more than `burst` in any `window`.
    fn admit(&self) -> Result<(), Instant> {
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        self.admit_at(&mut started, Instant::now())
    }

    fn admit_at(&self, started: &mut VecDeque<Instant>, now: Instant) -> Result<(), Instant> {
        if started.len() >= self.burst {
            let free_at = started[started.len() - self.burst] + self.window;
            if now < free_at {
                return Err(free_at);
            }
        }
        started.push_back(now);
        // Only the starts that can still refuse one are kept: the last
        // `burst`, and of those only the ones within the window.
        while started.len() > self.burst || started.front().is_some_and(|t| *t + self.window <= now)
        {
            started.pop_front();
        }
        Ok(())
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

    #[test]
    fn late_starts_do_not_bunch_into_one_second() {
        // Rate 10: ten sends start at t0; the slots of eight more passed while
        // the process stalled, and they all ask at t0 + 500 ms.
        let pace = Pace::new(10.0);
        let t0 = Instant::now();
        let mut started = VecDeque::new();
        for k in 0..10 {
            let at = t0 + Duration::from_millis(50) * k;
            assert!(pace.admit_at(&mut started, at).is_ok());
        }
        let late = t0 + Duration::from_millis(500);
        assert_eq!(
            pace.admit_at(&mut started, late),
            Err(t0 + Duration::from_secs(1)),
            "an eleventh send within the second"
        );
        // At t0 + 1 s the first one's second is over: one more may go, and
        // the next waits for the second send's second to end.
        let t1 = t0 + Duration::from_secs(1);
        assert!(pace.admit_at(&mut started, t1).is_ok());
        assert_eq!(
            pace.admit_at(&mut started, t1),
            Err(t0 + Duration::from_millis(1050))
        );
    }

    #[test]
    fn under_one_a_second_the_gap_is_the_period() {
        let pace = Pace::new(0.5);
        let t0 = Instant::now();
        let mut started = VecDeque::new();
        assert!(pace.admit_at(&mut started, t0).is_ok());
        assert_eq!(
            pace.admit_at(&mut started, t0 + Duration::from_millis(1500)),
            Err(t0 + Duration::from_secs(2))
        );
        assert!(pace
            .admit_at(&mut started, t0 + Duration::from_secs(2))
            .is_ok());
    }
}
