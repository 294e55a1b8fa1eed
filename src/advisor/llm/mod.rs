//! The LLM advisor: shows an OpenAI-compatible model the rules advisor's proposal beside
//! the run, through a structured prompt and a strict JSON schema, and asks for a review:
//! agree, amend (change a value, add a change, drop one with a reason) or replace. The
//! answer is untrusted input. Agreeing needs no check of the model's own: the rules'
//! proposal goes to validation as it would without a model. An answer that does not parse,
//! or whose own values (amended or added) validation rejects, goes back to the model with
//! the reasons (at most `max_repairs` times). After that the rules advisor decides, and the
//! provider says so (`openai→rules`), unless falling back is disabled. The model never
//! sees the file system and nothing it says bypasses `validate`.
//!
//! A healthy run is not sent at all (`healthy`): the rules decide, the provider is
//! `rules`, and the advice says why no model was asked, unless `ask_always`.
//!
//! This is the one async corner of the pipeline: the exchange runs on the process's shared
//! tokio runtime (`transport::runtime`) inside `advise`, under an overall deadline.

pub mod answer;
pub mod budget;
pub mod cache;
pub mod prompt;
pub mod review;
pub mod schema;
pub mod transport;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::rules::RulesAdvisor;
use super::{AdviceInput, Advisor};
use crate::error::{Error, Result};
use crate::lang::say;
use crate::types::LlmReport;
use crate::types::Message;
use crate::types::Proposal;
use crate::types::Rejected;
use cache::Cache;
use prompt::Templates;
use transport::{CallError, Endpoint, Mode, Resilience, Transport};

/// Everything the LLM advisor is configured with.
#[derive(Debug, Clone)]
pub struct LlmOptions {
    pub endpoint: Endpoint,
    pub resilience: Resilience,
    pub max_repairs: u32,
    pub max_tokens: u32,
    pub fallback: bool,
    pub cache: bool,
    pub prompts: Option<PathBuf>,
    /// Show a spinner on stderr while waiting (only when it is a terminal).
    pub spinner: bool,
    /// Ask the model about a healthy run too (`--ask-always`).
    pub ask_always: bool,
    /// Limits shared with other runs' advisors (`retune review`); `None` for one run.
    pub budget: Option<std::sync::Arc<budget::Budget>>,
}

pub struct LlmAdvisor {
    pub options: LlmOptions,
}

/// Why the conversation produced no usable answer.
struct Unusable {
    reason: String,
    /// Suggestions of the last answer that validation rejected.
    rejected: Vec<Rejected>,
}

impl Advisor for LlmAdvisor {
    fn uses_llm(&self) -> bool {
        true
    }

    fn advise(&self, input: &AdviceInput) -> Result<Proposal> {
        let templates = Templates::load(self.options.prompts.as_deref())?;
        // The proposal under review in the report's language (it becomes the decision when
        // the model agrees or fails), and in English for the prompt.
        let rules = RulesAdvisor.advise(input)?;
        if !self.options.ask_always && healthy(input.diagnosis, &rules) {
            let mut proposal = rules;
            proposal.advice.insert(
                0,
                say!(
                    input.lang,
                    "no LLM call: the run is healthy (no warning or critical finding, and the rules change nothing); --ask-always asks anyway",
                    "未调用 LLM：训练正常（没有警告或严重问题，规则也不做修改）；--ask-always 仍会询问"
                ),
            );
            return Ok(proposal);
        }
        let rules_en = prompt::rules_proposal(input.run, input.diagnosis)?;
        let messages = templates.messages_for(input.run, input.diagnosis, &rules_en)?;
        let mut report = LlmReport {
            endpoint: self.options.endpoint.base_url.clone(),
            model: self.options.endpoint.model.clone(),
            response_format: Mode::JsonSchema.as_str(),
            ..Default::default()
        };
        // In a review, this run's turn among those talking to the model at once, taken
        // now that its prompt is ready and held until its last answer; the wait is not
        // part of the deadline or the latency.
        let _slot = self.options.budget.as_deref().map(budget::Budget::slot);
        let started = Instant::now();
        let spinner = self.spinner();
        let runtime = transport::runtime()
            .map_err(|e| Error::LlmUnavailable(format!("cannot start the async runtime: {e}")))?;
        let deadline = self.options.resilience.deadline;
        let outcome = runtime.block_on(async {
            tokio::time::timeout(
                deadline,
                self.converse(input, &templates, messages, &rules, &mut report),
            )
            .await
            .unwrap_or_else(|_| {
                Err(Unusable {
                    reason: format!(
                        "no usable answer within the overall deadline of {} s (--deadline)",
                        deadline.as_secs_f64()
                    ),
                    rejected: Vec::new(),
                })
            })
        });
        if let Some(s) = spinner {
            s.finish_and_clear();
        }
        report.latency_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(mut proposal) => {
                proposal.llm = Some(report);
                Ok(proposal)
            }
            Err(unusable) if self.options.fallback => {
                let mut proposal = rules;
                proposal.provider = "openai→rules".into();
                proposal.model = Some(self.options.endpoint.model.clone());
                proposal.advice.insert(
                    0,
                    say!(
                        input.lang,
                        "the LLM gave no usable answer ({}), so the rules advisor decided",
                        "LLM 没有给出可用的答案（{}），因此由规则顾问决定",
                        unusable.reason
                    ),
                );
                proposal.discarded = unusable.rejected;
                report.fallback = Some(unusable.reason);
                proposal.llm = Some(report);
                Ok(proposal)
            }
            Err(unusable) => Err(Error::LlmUnavailable(format!(
                "{} (the rules advisor was not asked: --no-fallback)",
                unusable.reason
            ))),
        }
    }
}

/// A run with nothing for the model to review: it would pay a call (seconds on a local
/// model, tokens on a paid one) to agree with "change nothing", once per epoch when a
/// trainer asks after every epoch.
///
/// `info` findings do not count: each says something that is not a problem (a plateau that
/// may be convergence, a warmup still running, a momentum the optimizer ignores, a class
/// imbalance the loss already weighs), which is why `review` shows such a run as healthy and
/// exits 0 on it. But when the rules act anyway (a cut on a plateau that may be
/// convergence, another raise of a rate whose raise helped, a restore), that change is what
/// the model is there to review, so the run is asked about.
pub fn healthy(diagnosis: &crate::types::Diagnosis, rules: &Proposal) -> bool {
    diagnosis
        .findings
        .iter()
        .all(|f| f.severity == crate::types::Severity::Info)
        && rules.changes.is_empty()
        && rules.actions.is_empty()
}

impl LlmAdvisor {
    fn spinner(&self) -> Option<indicatif::ProgressBar> {
        use std::io::IsTerminal;
        if !self.options.spinner || !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(format!(
            "asking {} at {}",
            self.options.endpoint.model, self.options.endpoint.base_url
        ));
        bar.enable_steady_tick(Duration::from_millis(120));
        Some(bar)
    }

    async fn converse(
        &self,
        input: &AdviceInput<'_>,
        templates: &Templates,
        mut messages: Vec<Message>,
        rules: &Proposal,
        report: &mut LlmReport,
    ) -> std::result::Result<Proposal, Unusable> {
        let failed = |reason: String| Unusable {
            reason,
            rejected: Vec::new(),
        };
        let transport = Transport::new(self.options.endpoint.clone(), self.options.resilience)
            .map_err(failed)?;
        let cache = Cache::new(self.options.cache);
        let parameters: Vec<String> = input.run.tunables.iter().map(|t| t.path.clone()).collect();
        let proposed: Vec<String> = rules.changes.iter().map(|c| c.parameter.clone()).collect();
        let schema = schema::answer_schema_for(&parameters, Some(&proposed));
        let mut mode = Mode::JsonSchema;
        let mut all_cached = true;
        let mut last_rejected = Vec::new();
        let mut last_reasons = Vec::new();
        for round in 0..=self.options.max_repairs {
            let reply = loop {
                let request = transport::request_body(
                    &self.options.endpoint.model,
                    &messages,
                    mode,
                    &schema,
                    self.options.max_tokens,
                );
                // The key hashes the whole request: not worth computing when no cache is
                // read or written (`--no-cache`, and every run of a review that says so).
                let key = cache
                    .enabled()
                    .then(|| Cache::key(&request, &self.options.endpoint.base_url));
                if let Some(hit) = key.as_deref().and_then(|key| cache.get(key)) {
                    break hit;
                }
                all_cached = false;
                let reservation = match &self.options.budget {
                    Some(budget) => {
                        let estimate =
                            prompt::size(&messages).1 as u64 + u64::from(self.options.max_tokens);
                        let reservation = budget.reserve(estimate).map_err(failed)?;
                        budget.pace().await;
                        Some((budget, reservation))
                    }
                    None => None,
                };
                let result = transport.complete(request).await;
                if let Some((budget, reservation)) = reservation {
                    // A failed request is not billed; an answer without usage costs its
                    // estimate.
                    let cost = match &result {
                        Ok(r) => r
                            .prompt_tokens
                            .map(|p| p + r.completion_tokens.unwrap_or(0)),
                        Err(_) => Some(0),
                    };
                    budget.settle(reservation, cost);
                }
                match result {
                    Ok(reply) => {
                        if let Some(key) = &key {
                            cache.put(key, &reply);
                        }
                        break reply;
                    }
                    // A server that refuses json_schema gets json_object mode, once. Other
                    // 400s (a prompt over the context size) are failures, not a format issue.
                    Err(CallError::Refused { message, .. })
                        if mode == Mode::JsonSchema && transport::about_the_format(&message) =>
                    {
                        mode = Mode::JsonObject;
                        report.response_format = mode.as_str();
                    }
                    Err(err) => {
                        report.http_attempts = transport.attempts();
                        return Err(failed(err.to_string()));
                    }
                }
            };
            report.http_attempts = transport.attempts();
            report.answers += 1;
            report.repairs = round;
            report.prompt_tokens += reply.prompt_tokens.unwrap_or(0);
            report.completion_tokens += reply.completion_tokens.unwrap_or(0);
            report.cached = all_cached;
            let read = answer::parse(&reply.content)
                .and_then(|parsed| review::stance(&reply.content).map(|stance| (parsed, stance)));
            let reasons = match read {
                Ok((parsed, stance)) => {
                    if round == 0 {
                        report.first_answer_parsed = true;
                        report.first_verdict = Some(stance.verdict);
                    }
                    let (changes, review) =
                        review::combine(input.run, &rules.changes, &parsed, &stance);
                    let mut advice = rules.advice.clone();
                    advice.extend(
                        parsed
                            .extras
                            .iter()
                            .map(|(k, v)| format!("{}: {v}", k.replace('_', " "))),
                    );
                    let proposal = Proposal {
                        provider: "openai".into(),
                        model: reply
                            .model
                            .clone()
                            .or_else(|| Some(self.options.endpoint.model.clone())),
                        diagnosis: if parsed.diagnosis.is_empty() {
                            rules.diagnosis.clone()
                        } else {
                            parsed.diagnosis.clone()
                        },
                        changes,
                        // Actions (restore, restart, stop) are the rules' call: the
                        // model reviews values, and validation checks the actions anyway.
                        actions: rules.actions.clone(),
                        advice,
                        discarded: Vec::new(),
                        llm: None,
                    };
                    // The same validation the decision will apply, run now so the model can
                    // be told what to fix; only its own values count against it.
                    let own = review::models_own(&review);
                    let mistakes: Vec<Rejected> = if own.is_empty() {
                        Vec::new()
                    } else {
                        (input.trial)(&proposal)
                            .rejected
                            .into_iter()
                            .filter(|r| own.contains(&r.parameter.as_str()))
                            .collect()
                    };
                    if mistakes.is_empty() {
                        if round == 0 {
                            report.first_answer_valid = true;
                        }
                        report.review = Some(review);
                        return Ok(proposal);
                    }
                    let reasons = mistakes
                        .iter()
                        .map(|r| {
                            format!(
                                "{} = {}: {}",
                                r.parameter,
                                crate::num::value_text(&r.proposed),
                                r.reason
                            )
                        })
                        .collect();
                    last_rejected = mistakes;
                    reasons
                }
                Err(reasons) => {
                    last_rejected.clear();
                    reasons
                }
            };
            last_reasons = reasons.clone();
            if round < self.options.max_repairs {
                let repair = templates
                    .repair(&reply.content, &reasons)
                    .map_err(|e| failed(e.to_string()))?;
                messages.extend(repair);
            }
        }
        Err(Unusable {
            reason: format!(
                "{} answer(s) and none usable; last problems: {}",
                report.answers,
                last_reasons.join("; ")
            ),
            rejected: last_rejected
                .into_iter()
                .map(|mut r| {
                    r.reason = format!("LLM suggestion not used: {}", r.reason);
                    r
                })
                .collect(),
        })
    }
}

/// The schema `retune schema` prints: for a config when given, else generic.
pub fn schema_for(parameters: &[String]) -> Value {
    schema::answer_schema(parameters)
}
