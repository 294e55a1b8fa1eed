//! What many runs asking one endpoint share: a cap on model calls, a token budget, a
//! request rate, and how many runs talk to the model at once. `retune review` over 500
//! runs must not flood an endpoint or a bill, so every call first reserves its worst case
//! (the prompt's estimated tokens plus the answer's `max_tokens`) and is refused when that
//! would overrun the budget; the reservation is settled with the tokens the server
//! reports. A refused call makes the run's advisor fall back to the rules, saying why, like
//! any other unusable answer. Answers from the cache cost nothing and take no reservation.
//!
//! The conversations at once are counted by slots (`Budget::slot`), taken once a run's
//! prompt is built and held until its last answer: a review can then build the next runs'
//! prompts while the model answers the current ones, and each freed slot goes at once to a
//! run that is ready, instead of to one that has yet to be read into a prompt.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Condvar, Mutex};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;

/// The limits, from `--max-llm-calls`, `--budget-tokens` and `--llm-rate`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub max_calls: Option<u64>,
    pub max_tokens: Option<u64>,
    /// Requests per minute.
    pub per_minute: Option<NonZeroU32>,
    /// Runs talking to the model at once (`--concurrency`).
    pub at_once: Option<NonZeroUsize>,
}

pub struct Budget {
    limits: Limits,
    state: Mutex<State>,
    pacer: Option<DefaultDirectRateLimiter>,
    /// Slots taken, and a signal for a run waiting for one.
    busy: Mutex<usize>,
    freed: Condvar,
}

impl std::fmt::Debug for Budget {
    // The rate limiter has no Debug; the limits and the counters are what matter.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("limits", &self.limits)
            .field("usage", &self.usage())
            .finish()
    }
}

#[derive(Debug, Default)]
struct State {
    calls: u64,
    tokens_spent: u64,
    tokens_reserved: u64,
    refused: u64,
}

/// What the budget was used for, for the review's summary.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Usage {
    pub calls: u64,
    pub tokens: u64,
    /// Calls not made because a limit was reached.
    pub refused: u64,
    pub max_calls: Option<u64>,
    pub max_tokens: Option<u64>,
}

/// A call's claim on the token budget until the answer says what it cost.
#[derive(Debug)]
pub struct Reservation {
    tokens: u64,
}

/// One run's turn to talk to the model; the slot is free again when this is dropped.
#[derive(Debug)]
pub struct Slot<'a> {
    budget: &'a Budget,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut busy = lock(&self.budget.busy);
        *busy -= 1;
        drop(busy);
        self.budget.freed.notify_one();
    }
}

impl Budget {
    pub fn new(limits: Limits) -> Budget {
        Budget {
            limits,
            state: Mutex::new(State::default()),
            // Evenly spaced, no burst: `Quota::per_minute` would let a whole minute's
            // requests out at once, which is the flood the limit is there to prevent.
            pacer: limits.per_minute.and_then(|n| {
                Quota::with_period(std::time::Duration::from_secs(60) / n.get())
                    .map(RateLimiter::direct)
            }),
            busy: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Waits (blocking the thread) until fewer than `at_once` runs talk to the model, and
    /// takes a slot. Called outside the async runtime, before a run's deadline starts:
    /// waiting for a turn is not the model's time.
    pub fn slot(&self) -> Slot<'_> {
        let mut busy = lock(&self.busy);
        if let Some(at_once) = self.limits.at_once {
            while *busy >= at_once.get() {
                busy = self
                    .freed
                    .wait(busy)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
        *busy += 1;
        Slot { budget: self }
    }

    /// Claims one call and `estimate` tokens, or says which limit refuses it.
    pub fn reserve(&self, estimate: u64) -> Result<Reservation, String> {
        let mut state = self.lock();
        if let Some(max) = self.limits.max_calls
            && state.calls >= max
        {
            state.refused += 1;
            return Err(format!(
                "the review's {max} LLM calls are used up (--max-llm-calls)"
            ));
        }
        if let Some(max) = self.limits.max_tokens {
            let committed = state.tokens_spent + state.tokens_reserved;
            if committed + estimate > max {
                state.refused += 1;
                return Err(format!(
                    "this call may need {estimate} tokens and {} of the review's {max} are left (--budget-tokens)",
                    max.saturating_sub(committed)
                ));
            }
        }
        state.calls += 1;
        state.tokens_reserved += estimate;
        Ok(Reservation { tokens: estimate })
    }

    /// Replaces the reservation by what the call cost (`None` when the server did not
    /// say: then the estimate stands, erring on the side of the bill).
    pub fn settle(&self, reservation: Reservation, actual: Option<u64>) {
        let mut state = self.lock();
        state.tokens_reserved -= reservation.tokens;
        state.tokens_spent += actual.unwrap_or(reservation.tokens);
    }

    /// Waits until the shared request rate allows one more request.
    pub async fn pace(&self) {
        if let Some(pacer) = &self.pacer {
            pacer.until_ready().await;
        }
    }

    pub fn usage(&self) -> Usage {
        let state = self.lock();
        Usage {
            calls: state.calls,
            tokens: state.tokens_spent + state.tokens_reserved,
            refused: state.refused,
            max_calls: self.limits.max_calls,
            max_tokens: self.limits.max_tokens,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The state is a few counters updated in one step each, so a panic elsewhere cannot
    // leave them half-changed: a poisoned lock is still consistent.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_stop_at_the_cap() {
        let budget = Budget::new(Limits {
            max_calls: Some(2),
            ..Limits::default()
        });
        let a = budget.reserve(10).unwrap();
        budget.settle(a, Some(7));
        let _b = budget.reserve(10).unwrap();
        let refused = budget.reserve(10).unwrap_err();
        assert!(refused.contains("--max-llm-calls"), "{refused}");
        let usage = budget.usage();
        assert_eq!((usage.calls, usage.tokens, usage.refused), (2, 17, 1));
    }

    #[test]
    fn tokens_are_reserved_before_and_settled_after() {
        let budget = Budget::new(Limits {
            max_tokens: Some(1000),
            ..Limits::default()
        });
        let a = budget.reserve(600).unwrap();
        // With 600 reserved, a second worst case of 600 would overrun the budget.
        let refused = budget.reserve(600).unwrap_err();
        assert!(refused.contains("400 of the review's 1000"), "{refused}");
        budget.settle(a, Some(250));
        // The answer cost less than its worst case: the rest is free again.
        let b = budget.reserve(600).unwrap();
        budget.settle(b, None);
        assert_eq!(budget.usage().tokens, 850);
    }

    #[test]
    fn no_more_runs_talk_at_once_than_the_slots() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let budget = Budget::new(Limits {
            at_once: NonZeroUsize::new(3),
            ..Limits::default()
        });
        let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..12 {
                scope.spawn(|| {
                    let _slot = budget.slot();
                    let in_flight = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(in_flight, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    now.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 3);
        assert_eq!(*lock(&budget.busy), 0);
        // Without a limit a slot never waits.
        let open = Budget::new(Limits::default());
        let _slots: Vec<Slot> = (0..100).map(|_| open.slot()).collect();
    }

    #[tokio::test]
    async fn the_rate_spaces_requests() {
        let budget = Budget::new(Limits {
            per_minute: NonZeroU32::new(600),
            ..Limits::default()
        });
        let started = std::time::Instant::now();
        for _ in 0..3 {
            budget.pace().await;
        }
        // 600 a minute is one every 100 ms; the first passes at once.
        assert!(started.elapsed() >= std::time::Duration::from_millis(190));
    }
}
