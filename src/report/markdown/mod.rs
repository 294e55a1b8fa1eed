//! The Markdown report a person reads after an adjustment: a ten-second summary first
//! (verdict, changes, what the trainer should do), then the findings with their numbers,
//! the changes and everything that was rejected, what followed earlier adjustments, the
//! recent epochs, the chart and the config diff. Numbers go through `num`/`value_text`,
//! never `{}` on a float. Text that came from outside (config keys and values, metric
//! names, advisor prose that may come from an LLM) is escaped so it cannot break a table
//! or smuggle in HTML, links or images.

mod escape;
mod sections;

use crate::lang::Lang;
use crate::lang::say;
use crate::outcome::Outcome;
use escape::{code, escape_cell, link_destination, path_code, prose};
use sections::{changes, config_diff, earlier, findings, recent_epochs, summary};

pub fn render(outcome: &Outcome, chart_href: Option<&str>) -> String {
    let mut md = String::new();
    header(&mut md, outcome);
    summary(&mut md, outcome);
    findings(&mut md, outcome);
    changes(&mut md, outcome);
    earlier(&mut md, outcome);
    recent_epochs(&mut md, outcome);
    if let Some(href) = chart_href {
        let lang = outcome.lang;
        md.push_str(&say!(lang, "## Chart\n\n", "## 曲线图\n\n"));
        let alt = say!(lang, "loss and accuracy", "损失与准确率");
        md.push_str(&format!("![{alt}]({})\n\n", link_destination(href)));
    }
    config_diff(&mut md, outcome);
    md
}

/// The LLM exchange in one line: what was asked, what it cost, and whether it was used.
fn llm_line(md: &mut String, llm: &crate::types::LlmReport, lang: Lang) {
    let cached = if llm.cached {
        say!(lang, ", from the cache", "，来自缓存")
    } else {
        String::new()
    };
    md.push_str(&say!(
        lang,
        "- **LLM:** {} at {} ({}); {} answer(s), {} repair(s), {} HTTP request(s); {} prompt + {} completion tokens; {} ms{cached}\n",
        "- **LLM：** {} 于 {}（{}）；{} 个回答，{} 次修复，{} 次 HTTP 请求；提示 {} + 生成 {} 个 token；{} 毫秒{cached}\n",
        code(&llm.model),
        code(&llm.endpoint),
        llm.response_format,
        llm.answers,
        llm.repairs,
        llm.http_attempts,
        llm.prompt_tokens,
        llm.completion_tokens,
        llm.latency_ms
    ));
    if let Some(reason) = &llm.fallback {
        md.push_str(&say!(
            lang,
            "- **Fallback:** the rules advisor decided, because {}\n",
            "- **回退：** 由规则顾问决定，原因：{}\n",
            prose(reason)
        ));
    }
}

/// What the model did with the rules advisor's proposal, in one line: "the model agreed
/// with the rules: `lr` 0.3 → 0.03", "the model amended the rules' proposal: `lr` 0.3 →
/// 0.1 instead of 0.03 (validation clamped it to 0.06)". `None` when no model reviewed it
/// (the rules alone, or a fallback, which has its own line). `param` and `text` dress the
/// parameter paths and the rest for Markdown, or leave them plain for the JSON.
pub(super) fn review_line(
    outcome: &Outcome,
    param: &dyn Fn(&str) -> String,
    text: &dyn Fn(&str) -> String,
) -> Option<String> {
    use crate::num::value_text;
    use crate::types::{Reviewed, Verdict};
    let lang = outcome.lang;
    let review = outcome.proposal.llm.as_ref()?.review.as_ref()?;
    let decision = &outcome.decision;
    let value = |v: &Option<serde_json::Value>| v.as_ref().map(value_text).unwrap_or_default();
    let parts: Vec<String> = review
        .items
        .iter()
        .map(|item| {
            let p = param(&item.parameter);
            let from = match &item.old {
                Some(old) => format!("{} → ", text(&value_text(old))),
                None => "→ ".to_string(),
            };
            let rules = text(&value(&item.rules));
            let model = text(&value(&item.model));
            let mut part = match (item.what, review.verdict) {
                (Reviewed::Agreed, Verdict::Agree) => format!("{p} {from}{rules}"),
                (Reviewed::Agreed, _) => {
                    say!(lang, "kept {p} {from}{rules}", "保留 {p} {from}{rules}")
                }
                (Reviewed::Amended, _) => say!(
                    lang,
                    "{p} {from}{model} instead of {rules}",
                    "{p} {from}{model}（规则为 {rules}）"
                ),
                (Reviewed::Added, _) => {
                    say!(lang, "added {p} {from}{model}", "新增 {p} {from}{model}")
                }
                (Reviewed::Dropped, _) => {
                    say!(lang, "dropped {p} {from}{rules}", "删去 {p} {from}{rules}")
                }
            };
            if item.what == Reviewed::Dropped {
                match &item.reason {
                    Some(why) => part.push_str(&say!(lang, " ({})", "（{}）", text(why))),
                    None => part.push_str(&say!(lang, " (no reason given)", "（未说明原因）")),
                }
            } else if decision
                .rejected
                .iter()
                .any(|r| r.parameter == item.parameter)
            {
                part.push_str(&say!(lang, " (rejected by validation)", "（被校验拒绝）"));
            } else if let Some(c) = decision
                .changes
                .iter()
                .find(|c| c.parameter == item.parameter && c.clamped.is_some())
            {
                part.push_str(&say!(
                    lang,
                    " (validation clamped it to {})",
                    "（校验限幅为 {}）",
                    text(&value_text(&c.new))
                ));
            }
            part
        })
        .collect();
    // Semicolons: a dropped change's reason may hold commas.
    let list = parts.join(&say!(lang, "; ", "；"));
    Some(match (review.verdict, parts.is_empty()) {
        (Verdict::Agree, true) => say!(
            lang,
            "the model agreed with the rules: no change",
            "模型同意规则顾问：不做变更"
        ),
        (Verdict::Agree, false) => say!(
            lang,
            "the model agreed with the rules: {list}",
            "模型同意规则顾问：{list}"
        ),
        (Verdict::Amend, _) => say!(
            lang,
            "the model amended the rules' proposal: {list}",
            "模型修改了规则顾问的提议：{list}"
        ),
        (Verdict::Replace, true) => say!(
            lang,
            "the model replaced the rules' proposal with no change",
            "模型以“不做变更”取代了规则顾问的提议"
        ),
        (Verdict::Replace, false) => say!(
            lang,
            "the model replaced the rules' proposal: {list}",
            "模型取代了规则顾问的提议：{list}"
        ),
    })
}

fn header(md: &mut String, outcome: &Outcome) {
    let lang = outcome.lang;
    let run = &outcome.run;
    md.push_str(&say!(
        lang,
        "# retune adjustment {}\n\n",
        "# retune 调整报告 {}\n\n",
        code(&outcome.adjustment_id)
    ));
    let time = outcome.time.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    md.push_str(&say!(lang, "- **Time:** {time}\n", "- **时间：** {time}\n"));
    let provider = code(&outcome.proposal.provider);
    match outcome.proposal.model.as_deref() {
        Some(model) => md.push_str(&say!(
            lang,
            "- **Advisor:** {provider}, model {}\n",
            "- **顾问：** {provider}，模型 {}\n",
            code(model)
        )),
        None => md.push_str(&say!(
            lang,
            "- **Advisor:** {provider}\n",
            "- **顾问：** {provider}\n"
        )),
    }
    if let Some(llm) = &outcome.proposal.llm {
        llm_line(md, llm, lang);
    }
    if let Some(line) = review_line(outcome, &|p| code(p), &|t| escape_cell(t)) {
        md.push_str(&say!(
            lang,
            "- **Review:** {line}\n",
            "- **审阅：** {line}\n"
        ));
    }
    if let Some(config) = &run.config {
        md.push_str(&say!(
            lang,
            "- **Config read:** {}\n",
            "- **读取的配置：** {}\n",
            path_code(&config.path)
        ));
    }
    let m = &run.metrics;
    md.push_str(&say!(
        lang,
        "- **Metrics read:** {} ({}; through epoch {}, {} series)\n",
        "- **读取的指标：** {}（{}；截至第 {} 轮，{} 个指标）\n",
        path_code(&m.path),
        m.format.label(),
        run.facts.epochs_done,
        m.series.len()
    ));
    for warning in &m.warnings {
        md.push_str(&say!(
            lang,
            "- **Read with a warning:** {}\n",
            "- **读取警告：** {}\n",
            prose(warning)
        ));
    }
    let w = &outcome.written;
    match &w.config_out {
        Some(out) => md.push_str(&say!(
            lang,
            "- **Adjusted config:** {}\n",
            "- **调整后的配置：** {}\n",
            path_code(out)
        )),
        None => md.push_str(&say!(
            lang,
            "- **Dry run:** nothing was written\n",
            "- **试运行：** 未写入任何文件\n"
        )),
    }
    if let Some(json) = &w.report_json {
        md.push_str(&say!(
            lang,
            "- **Decision as JSON:** {}\n",
            "- **JSON 格式的决定：** {}\n",
            path_code(json)
        ));
    }
    md.push('\n');
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use jiff::Timestamp;

    use serde_json::Value;

    use super::*;
    use crate::config::ConfigDoc;
    use crate::history::{self, HistoryEntry};
    use crate::metrics::{Format, MetricsBuilder, PartialEpoch};
    use crate::outcome::OutputPaths;
    use crate::report::Written;
    use crate::run::Run;
    use crate::space::Space;
    use crate::types::FindingId;
    use crate::types::Proposal;
    use crate::types::evidence;
    use crate::types::{Action, Finding, Severity};
    use crate::types::{Change, Clamp, Decision, Rejected};
    use crate::types::{Diagnosis, Skipped};
    use crate::types::{LlmReport, Review, ReviewItem, Reviewed, Verdict};

    const CONFIG: &str = r#"{
  "model_name": "MobileNetV3",
  "data_dir": "E:\\PIC|SLM\\dataset",
  "optimizer": "Adam",
  "num_classes": 5,
  "num_epochs": 20,
  "batch_size": 32,
  "learning_rate": 0.001,
  "weight_decay": 0.0001,
  "dropout_rate": 0.5,
  "label_smoothing": 0.1,
  "model_ema_decay": 0.9999
}
"#;

    /// A run twelve epochs in that started to overfit after epoch 9, adjusted once before
    /// at epoch 8, with the epoch-13 progress line of a Keras log.
    fn outcome(lang: Lang) -> Outcome {
        let config = ConfigDoc::parse(Path::new("runs/mnv3/config.json"), CONFIG.into()).unwrap();
        let mut b = MetricsBuilder::new();
        let loss = [
            1.61, 1.32, 1.1, 0.95, 0.84, 0.75, 0.68, 0.62, 0.57, 0.52, 0.48, 0.44,
        ];
        let val_loss = [
            1.58, 1.35, 1.15, 1.02, 0.93, 0.86, 0.8, 0.76, 0.73, 0.745, 0.77, 0.8,
        ];
        let acc = [
            0.31, 0.45, 0.56, 0.63, 0.68, 0.72, 0.75, 0.78, 0.8, 0.82, 0.84, 0.86,
        ];
        let val_acc = [
            0.3, 0.42, 0.52, 0.58, 0.62, 0.65, 0.67, 0.69, 0.7, 0.70, 0.69, 0.685,
        ];
        for e in 0..12 {
            let epoch = e as u32 + 1;
            b.push("loss", epoch, loss[e]);
            b.push("val_loss", epoch, val_loss[e]);
            b.push("acc", epoch, acc[e]);
            b.push("val_acc", epoch, val_acc[e]);
            b.push(
                "lr",
                epoch,
                if epoch <= 8 {
                    0.003
                } else {
                    0.0010000000474974513
                },
            );
        }
        b.partial = Some(PartialEpoch {
            epoch: 13,
            steps_done: 120,
            steps_total: Some(469),
            values: vec![("acc".into(), 0.871), ("loss".into(), 0.4312)],
        });
        let metrics = b
            .finish(Path::new("runs/mnv3/train.log"), Format::KerasLog)
            .unwrap();
        let history = vec![HistoryEntry {
            time: "2026-09-01T10:00:00Z".into(),
            adjustment_id: "adj-20260901T100000Z-0a1b2c".into(),
            config: "runs/mnv3/config.json".into(),
            config_out: Some("runs/mnv3/config.json".into()),
            ..history::entry(
                Some(8),
                &[("learning_rate", "learning_rate", 0.003, 0.001)],
                &["oscillation"],
                &[
                    ("loss", 0.62),
                    ("val_loss", 0.76),
                    ("accuracy", 0.78),
                    ("val_accuracy", 0.69),
                ],
            )
        }];
        let run = Run::new(
            Some(config.clone()),
            metrics,
            Space::load(None).unwrap(),
            history,
            None,
        );

        let diagnosis = Diagnosis {
            findings: vec![
                Finding {
                    id: FindingId::Overfitting,
                    severity: Severity::Warning,
                    summary: say!(
                        lang,
                        "val_loss has risen for 3 epochs since its best (0.73 at epoch 9) while loss kept falling",
                        "val_loss 自最佳值（第 9 轮 0.73）起连续 3 轮上升，而 loss 仍在下降"
                    ),
                    evidence: evidence![
                        "best_epoch" => 9u32,
                        "best_val_loss" => 0.73,
                        "val_loss" => vec![0.745, 0.77, 0.8],
                        "overfit_ratio" => 0.8181818181818182,
                    ],
                },
                Finding {
                    id: FindingId::EmaHorizonTooLong,
                    severity: Severity::Info,
                    summary: say!(
                        lang,
                        "model_ema_decay 0.9999 averages over about 10000 steps, longer than the 9380 steps the run has",
                        "model_ema_decay 0.9999 约平均 10000 步，超过训练的 9380 步"
                    ),
                    evidence: evidence!["horizon_steps" => 10000u32, "total_steps" => 9380u32],
                },
            ],
            skipped: vec![Skipped {
                check: "chance_level",
                reason: say!(lang, "accuracy is far above 1/5", "准确率远高于 1/5"),
            }],
            classes: None,
            effects: crate::diagnose::effects::effects(&run, lang),
        };

        let proposal = Proposal {
            provider: "openai".into(),
            model: Some("gpt-4o-mini".into()),
            diagnosis: say!(
                lang,
                "The model memorises the training set: val_loss turned at epoch 9.\nRegularise | slow down.",
                "模型在记忆训练集：val_loss 在第 9 轮转头。\n加强正则化 | 放慢学习。"
            ),
            changes: vec![],
            actions: vec![Action::RestoreCheckpoint],
            advice: vec![say!(
                lang,
                "add data augmentation: the config has no augmentation key to change",
                "增加数据增强：配置中没有可修改的增强参数"
            )],
            discarded: vec![],
            llm: Some(llm_report()),
        };
        let decision = Decision {
            changes: vec![
                Change {
                    parameter: "weight_decay".into(),
                    canonical: "weight_decay".into(),
                    old: Value::from(0.0001),
                    new: Value::from(0.0003),
                    rationale: say!(
                        lang,
                        "train/val gap grows | stronger L2 <b>now</b>",
                        "训练/验证差距扩大 | 加强 L2 <b>正则</b>"
                    ),
                    confidence: 0.7,
                    clamped: None,
                },
                Change {
                    parameter: "dropout_rate".into(),
                    canonical: "dropout".into(),
                    old: Value::from(0.5),
                    new: Value::from(0.6),
                    rationale: say!(
                        lang,
                        "more dropout against memorising",
                        "提高 dropout 以抑制记忆"
                    ),
                    confidence: 0.55,
                    clamped: Some(Clamp {
                        proposed: Value::from(0.8),
                        reason: say!(
                            lang,
                            "clamped from 0.8 to 0.6: one adjustment moves dropout by at most 0.1",
                            "从 0.8 限制为 0.6：dropout 每次最多变化 0.1"
                        ),
                    }),
                },
            ],
            rejected: vec![Rejected {
                parameter: "learning_rate".into(),
                proposed: Value::from(9.999999999999999e-4),
                reason: say!(
                    lang,
                    "no-op: 0.001 → 0.001 changes the value by less than 2%",
                    "无效变更：0.001 → 0.001 的变化小于 2%"
                ),
            }],
            actions: vec![Action::RestoreCheckpoint],
            notes: vec![say!(
                lang,
                "dropped the action `stop_early`: the findings do not support it",
                "已忽略动作 `stop_early`：诊断结果不支持"
            )],
        };
        let new_config = config
            .with_changes(&[
                ("weight_decay".into(), Value::from(0.0003)),
                ("dropout_rate".into(), Value::from(0.6)),
            ])
            .unwrap();
        let id = "adj-20260914T112126Z-3f9a0c";
        Outcome {
            adjustment_id: id.into(),
            time: Timestamp::from_second(1_789_384_886).unwrap(),
            lang,
            run,
            diagnosis,
            proposal,
            decision,
            paths: OutputPaths {
                config_out: PathBuf::from("runs/mnv3/config.retuned.json"),
                report_dir: PathBuf::from("reports"),
                history: PathBuf::from("reports/history.jsonl"),
            },
            new_config,
            written: Written {
                config_out: Some(PathBuf::from("runs/mnv3/config.retuned.json")),
                report: Some(PathBuf::from(format!("reports/{id}.md"))),
                report_json: Some(PathBuf::from(format!("reports/{id}.json"))),
                chart: Some(PathBuf::from(format!("reports/{id}.svg"))),
                history: Some(PathBuf::from("reports/history.jsonl")),
            },
        }
    }

    /// A model that amended the rules: a value changed, two added (one clamped, one
    /// rejected by validation) and one dropped with a reason that holds Markdown.
    fn llm_report() -> LlmReport {
        let item =
            |parameter: &str, what, old: f64, rules: Option<f64>, model: Option<f64>| ReviewItem {
                parameter: parameter.into(),
                what,
                old: Some(Value::from(old)),
                rules: rules.map(Value::from),
                model: model.map(Value::from),
                reason: None,
            };
        let mut dropped = item("label_smoothing", Reviewed::Dropped, 0.1, Some(0.05), None);
        dropped.reason = Some("the gap is in val_loss | not <b>confidence</b>".into());
        LlmReport {
            endpoint: "http://127.0.0.1:8080/v1".into(),
            model: "gemma-3-270m".into(),
            response_format: "json_schema",
            answers: 1,
            http_attempts: 1,
            prompt_tokens: 1532,
            completion_tokens: 310,
            latency_ms: 9120,
            first_answer_parsed: true,
            first_answer_valid: true,
            first_verdict: Some(Verdict::Amend),
            review: Some(Review {
                verdict: Verdict::Amend,
                items: vec![
                    item(
                        "weight_decay",
                        Reviewed::Amended,
                        0.0001,
                        Some(0.0002),
                        Some(0.0003),
                    ),
                    dropped,
                    item("dropout_rate", Reviewed::Added, 0.5, None, Some(0.8)),
                    item(
                        "learning_rate",
                        Reviewed::Added,
                        0.001,
                        None,
                        Some(9.999999999999999e-4),
                    ),
                ],
            }),
            ..LlmReport::default()
        }
    }

    #[test]
    fn the_review_reads_in_one_line_in_both_languages() {
        let o = outcome(Lang::En);
        let line = review_line(&o, &|p| p.to_string(), &|t| t.to_string()).unwrap();
        assert_eq!(
            line,
            "the model amended the rules' proposal: weight_decay 0.0001 → 0.0003 instead of 0.0002; \
             dropped label_smoothing 0.1 → 0.05 (the gap is in val_loss | not <b>confidence</b>); \
             added dropout_rate 0.5 → 0.8 (validation clamped it to 0.6); \
             added learning_rate 0.001 → 0.001 (rejected by validation)"
        );
        let mut agreeing = outcome(Lang::Zh);
        let llm = agreeing.proposal.llm.as_mut().unwrap();
        llm.review = Some(Review {
            verdict: Verdict::Agree,
            items: Vec::new(),
        });
        let line = review_line(&agreeing, &|p| p.to_string(), &|t| t.to_string()).unwrap();
        assert_eq!(line, "模型同意规则顾问：不做变更");
        // No review (the rules alone, or a fallback): no line.
        agreeing.proposal.llm = None;
        assert!(review_line(&agreeing, &|p| p.to_string(), &|t| t.to_string()).is_none());
    }

    #[test]
    fn report_en() {
        let o = outcome(Lang::En);
        let md = render(&o, Some("adj-20260914T112126Z-3f9a0c.svg"));
        insta::assert_snapshot!(md);
    }

    #[test]
    fn report_zh() {
        let o = outcome(Lang::Zh);
        let md = render(&o, Some("adj-20260914T112126Z-3f9a0c.svg"));
        insta::assert_snapshot!(md);
    }

    #[test]
    fn a_healthy_run_with_no_change_says_so() {
        let mut o = outcome(Lang::En);
        o.diagnosis.findings.clear();
        o.decision = Decision::default();
        o.proposal.diagnosis.clear();
        o.proposal.advice.clear();
        o.run.history.clear();
        o.diagnosis.effects.clear();
        o.new_config = o.run.config.as_ref().unwrap().text.clone();
        o.written = Written::default();
        let md = render(&o, None);
        assert!(
            md.contains("**Healthy:** no detector fired on 12 epochs. No change to the config.")
        );
        assert!(md.contains("continue training as it is."));
        assert!(md.contains("first adjustment of this run"));
        assert!(md.contains("No change: the adjusted config is the input config."));
        assert!(md.contains("**Dry run:** nothing was written"));
        assert!(!md.contains("## Chart"));
        assert!(!md.contains("Rejected"));
    }

    #[test]
    fn advice_without_a_change_is_what_the_trainer_acts_on() {
        let mut o = outcome(Lang::En);
        o.decision = Decision::default();
        // An advisor that repeats the top finding is not quoted twice.
        o.proposal.diagnosis = o.diagnosis.findings[0].summary.clone();
        let md = render(&o, None);
        assert!(
            md.contains("no config change this time; read the advice below"),
            "{md}"
        );
        assert!(!md.contains("> **Advisor"), "{md}");
        o.proposal.advice.clear();
        let md = render(&o, None);
        assert!(md.contains("continue training; no config change was accepted."));
    }
}
