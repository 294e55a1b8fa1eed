//! What many runs asking one endpoint share: a cap on model calls, a token budget and a
//! request rate. `retune review` over 500 runs must not flood an endpoint or a bill, so
//! every call first reserves its worst case (the prompt's estimated tokens plus the
//! answer's `max_tokens`) and is refused when that would overrun the budget; the
//! reservation is settled with the tokens the server reports. A refused call makes the
//! run's advisor fall back to the rules, saying why, like any other unusable answer.
//! Answers from the cache cost nothing and take no reservation.

use std::num::NonZeroU32;
use std::sync::Mutex;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;

/// The limits, from `--max-llm-calls`, `--budget-tokens` and `--llm-rate`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub max_calls: Option<u64>,
    pub max_tokens: Option<u64>,
    /// Requests per minute.
    pub per_minute: Option<NonZeroU32>,
}

pub struct Budget {
    limits: Limits,
    state: Mutex<State>,
    pacer: Option<DefaultDirectRateLimiter>,
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
        }
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
        // The state is a few counters updated in one step each, so a panic elsewhere
        // cannot leave them half-changed: a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
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
