//! The learning-rate responses: divergence, a run stuck at or near chance, a plateau, a
//! stall at a high rate, a rate still too high after a divergence, a raise that helps.
//! A rate an order of magnitude outside its optimizer's range is cut into it in one step.

use super::*;

impl<'a> Plan<'a> {
    /// Cut the learning rate; go back to the last sane weights or start over.
    pub(super) fn divergence(&mut self, f: &Finding) {
        let epoch = ev_num(f, "epoch");
        let value = ev_text(f, "value");
        let series = ev_str(f, "original")
            .or_else(|| ev_str(f, "series"))
            .unwrap_or("loss");
        let sane = f.evidence.get("last_sane_epoch").and_then(Value::as_u64);
        let lang = self.lang;
        let action = match sane {
            Some(_) => Action::RestoreCheckpoint,
            None => Action::Restart,
        };
        self.actions.push(action);
        let context = match sane {
            Some(_) => {
                // Go back to the best weights, not merely the last sane ones: the epochs
                // just before a blow-up are often already degrading.
                let best = self.best_epoch(f);
                say!(
                    lang,
                    "{series} became {value} at epoch {}; the weights were sane before that (best {series} {} at epoch {}), so restore that checkpoint",
                    "{series} 在第 {} 轮变为 {value}；此前权重正常（第 {2} 轮 {series} 最佳为 {1}），请恢复该检查点",
                    num(epoch),
                    best.1,
                    best.0
                )
            }
            None => say!(
                lang,
                "{series} became {value} at epoch {} and no earlier epoch was sane, so every checkpoint holds exploded weights: restart from fresh weights",
                "{series} 在第 {} 轮变为 {value}，之前没有正常的轮次，所有检查点的权重都已发散：请重新初始化权重",
                num(epoch)
            ),
        };
        match self.run.tunable("learning_rate") {
            Some(lr) => {
                let new = lr.value * DIVERGENCE_LR_FACTOR;
                if let Some(x) = self.extreme_high().filter(|x| new > ev_num(x, "high")) {
                    let (to, rescue) = self.cut_into_range(lr, x);
                    let text = self.range_cut_text(lr, x, to, rescue);
                    self.propose(lr, to, format!("{context}; {text}"), 0.9);
                    return self.clip_advice();
                }
                let rationale = say!(
                    lang,
                    "{context}; cut the learning rate 10× ({} → {}) so the next steps stay finite",
                    "{context}；学习率降低 10 倍（{} → {}），使后续更新保持有限",
                    num(lr.value),
                    num(new)
                );
                self.propose(lr, new, rationale, 0.9);
            }
            None => self.advice.push(say!(
                lang,
                "{context}; the config has no learning-rate key to lower: lower it in the training script (10× is a good first step)",
                "{context}；配置中没有学习率键可以调低：请在训练脚本中降低学习率（先降 10 倍）"
            )),
        }
        self.clip_advice();
    }

    /// Loss barely moves from where it started: cut a rate far above its range (that IS
    /// the harm), raise the step size if it is small, or say plainly that the data and
    /// labels need checking.
    pub(super) fn barely_moving(&mut self, f: &Finding, kind: Stuck) {
        let lang = self.lang;
        let at_chance = kind != Stuck::Slow;
        let lr = self.run.tunable("learning_rate");
        let sgd = self.is_sgd();
        let momentum = self.run.tunable("momentum");
        let usual = if sgd { USUAL_LR_SGD } else { USUAL_LR_ADAPTIVE };
        let far_below = lr.is_some_and(|t| t.value <= usual / FAR_BELOW_USUAL * (1.0 + 1e-9));
        let below = lr.is_some_and(|t| t.value < usual / BELOW_USUAL);
        let evidence = match kind {
            Stuck::Chance => say!(
                lang,
                "loss {} ≈ ln {} = {} and accuracy {} ≈ 1/{} for {}: the model predicts no better than chance",
                "损失 {} ≈ ln {} = {}，准确率 {} ≈ 1/{}，已持续 {} 轮：模型的预测不比随机猜测好",
                ev_text(f, "loss"),
                ev_text(f, "classes"),
                ev_text(f, "chance_loss"),
                ev_text(f, "accuracy"),
                ev_text(f, "classes"),
                epochs_text(lang, ev_num(f, "epochs_at_chance"))
            ),
            Stuck::Slow => say!(
                lang,
                "{} fell only {}% per epoch over the last {} epochs ({} → {})",
                "{0} 在最近 {2} 轮中每轮仅下降 {1}%（{3} → {4}）",
                ev_str(f, "series").unwrap_or("loss"),
                num(ev_num(f, "mean_rel_drop_per_epoch") * 100.0),
                ev_text(f, "epochs"),
                ev_text(f, "first"),
                ev_text(f, "last")
            ),
            // The new detectors' own sentences carry their numbers.
            Stuck::NotLearning | Stuck::Pinned => sentence(&f.summary),
        };
        // A rate far above its optimizer's range on a run that does not learn: the rate is
        // the harm. Cut it into the range, and start again when nothing was ever learned.
        if at_chance && let (Some(lr), Some(x)) = (lr, self.extreme_high()) {
            self.rescue(lr, x, &evidence);
            return;
        }
        let far_too_low = far_below
            || self
                .diagnosis
                .get(FindingId::LearningRateExtreme)
                .is_some_and(|f| ev_str(f, "direction") == Some("low"));
        match lr {
            // A rate orders of magnitude too small: the largest step one adjustment allows.
            Some(lr) if far_too_low => {
                let new = lr.value * lr.spec.max_factor.unwrap_or(SLOW_LR_FACTOR);
                let rationale = say!(
                    lang,
                    "{evidence}; the learning rate {} is far below the usual range for {}, so raise it by the largest step allowed, to {}",
                    "{evidence}；学习率 {0} 远低于 {1} 的常用范围，按允许的最大步长提高到 {2}",
                    num(lr.value),
                    self.optimizer_name(),
                    num(new)
                );
                self.propose(lr, new, rationale, 0.7);
                return;
            }
            _ => {}
        }
        // A rate already above its optimizer's usual range is not raised, whatever the loss.
        if self
            .diagnosis
            .get(FindingId::LearningRateExtreme)
            .is_some_and(|f| ev_str(f, "direction") == Some("high"))
        {
            self.advice.push(say!(
                lang,
                "{evidence}; the learning rate is already above the usual range for {}, so a larger one is not the fix: check the data, the loss and the model's output layer",
                "{evidence}；学习率已高于 {} 的常用范围，再提高不是办法：请检查数据、损失函数和模型输出层",
                self.optimizer_name()
            ));
            return;
        }
        // Plain SGD with no momentum: momentum is the lever that multiplies the step.
        if sgd && let Some(m) = momentum.filter(|m| m.value == 0.0) {
            let rationale = say!(
                lang,
                "{evidence}; this is plain SGD (momentum 0): momentum {SGD_MOMENTUM} multiplies the effective step about 10× and smooths it",
                "{evidence}；当前是无动量的 SGD：动量 {SGD_MOMENTUM} 使有效步长约增大 10 倍并更平稳"
            );
            self.propose(m, SGD_MOMENTUM, rationale, 0.6);
            return;
        }
        // Heavy dropout can keep a network from fitting at all.
        if let Some(dropout) = self
            .run
            .tunable("dropout")
            .filter(|t| t.value > DROPOUT_CEILING)
        {
            let rationale = say!(
                lang,
                "{evidence}; dropout {} drops most activations, which can keep a network from fitting: lower it to {}",
                "{evidence}；dropout {} 丢弃了大部分激活，可能使网络无法拟合：降低到 {}",
                num(dropout.value),
                num(DROPOUT_CEILING)
            );
            self.propose(dropout, DROPOUT_CEILING, rationale, 0.5);
            return;
        }
        match lr {
            Some(lr) if !at_chance || below => {
                if self.would_reverse(lr, 1.0) {
                    return;
                }
                let new = lr.value * SLOW_LR_FACTOR;
                let rationale = say!(
                    lang,
                    "{evidence}; the learning rate {} is small for {}, so raise it 3× to {}",
                    "{evidence}；对 {1} 而言学习率 {0} 偏小，提高 3 倍到 {2}",
                    num(lr.value),
                    self.optimizer_name(),
                    num(new)
                );
                self.propose(lr, new, rationale, 0.5);
            }
            _ => self.advice.push(say!(
                lang,
                "{evidence}, and nothing in the config explains it{}. Check the data and labels before tuning: that labels line up with inputs (not shuffled separately), that the classes are not all one label, that inputs are normalised, that sequences are not truncated or padded away, and that the output activation matches the loss (sigmoid with binary cross-entropy, softmax with categorical).",
                "{evidence}，而配置中没有能解释它的设置{}。调参之前请先检查数据和标签：标签是否与输入对齐（没有被单独打乱）、类别是否全是同一标签、输入是否已归一化、序列是否被截断或填充掉、输出激活是否与损失匹配（sigmoid 配二元交叉熵，softmax 配多类交叉熵）。",
                lr.map(|t| say!(
                    lang,
                    " (learning rate {} is ordinary for {})",
                    "（学习率 {} 对 {} 来说很常规）",
                    num(t.value),
                    self.optimizer_name()
                ))
                .unwrap_or_default()
            )),
        }
    }

    /// The config check's finding that the learning rate is above its optimizer's usual
    /// range, for the config's learning-rate key.
    pub(super) fn extreme_high(&self) -> Option<&'a Finding> {
        let lr = self.run.tunable("learning_rate")?;
        let d: &'a Diagnosis = self.diagnosis;
        d.findings.iter().find(|f| {
            f.id == FindingId::LearningRateExtreme
                && ev_str(f, "direction") == Some("high")
                && ev_str(f, "parameter").is_none_or(|p| p == lr.path)
        })
    }

    /// Where a cut of a rate above its range goes: the usual rate (a tenth of the range's
    /// top) when the rate is an order of magnitude or more above the top, a rescue that
    /// may pass the step limit; otherwise the largest step, which lands inside the range.
    /// The bool says whether it is a rescue.
    pub(super) fn cut_into_range(&self, lr: &Tunable, x: &Finding) -> (f64, bool) {
        let high = ev_num(x, "high");
        let target = high / RESCUE_BELOW_TOP;
        if lr.value >= high * RESCUE_OUTSIDE_FACTOR * (1.0 - 1e-9) {
            (target, true)
        } else {
            let factor = lr.spec.max_factor.unwrap_or(1.0 / DIVERGENCE_LR_FACTOR);
            (target.max(lr.value / factor), false)
        }
    }

    /// The words for a cut into the range.
    pub(super) fn range_cut_text(
        &self,
        lr: &Tunable,
        x: &Finding,
        new: f64,
        rescue: bool,
    ) -> String {
        let times = lr.value / ev_num(x, "high");
        if rescue {
            say!(
                self.lang,
                "the learning rate {} is {}× the top of the usual range for {} (≤ {}): cut it {} → {}, into the usual range in one step: the step limit is for tuning, this is a rescue",
                "学习率 {0} 是 {2} 常用范围上限（≤ {3}）的 {1} 倍：一步降到常用范围内，{4} → {5}；步长限制用于调参，这是救援",
                num(lr.value),
                num(times),
                self.optimizer_name(),
                ev_text(x, "high"),
                num(lr.value),
                num(new)
            )
        } else {
            say!(
                self.lang,
                "the learning rate {} is above the usual range for {} (≤ {}): cut it {} → {}, into the range",
                "学习率 {} 高于 {} 的常用范围（≤ {}）：降低 {} → {}，回到范围内",
                num(lr.value),
                self.optimizer_name(),
                ev_text(x, "high"),
                num(lr.value),
                num(new)
            )
        }
    }

    /// A run that does not learn at a rate far above its range: cut the rate into the
    /// range; restart when the run never got better than chance (units a too-large step
    /// has silenced do not come back when the rate falls), else go back to the best epoch.
    pub(super) fn rescue(&mut self, lr: &Tunable, x: &Finding, evidence: &str) {
        let (new, rescue) = self.cut_into_range(lr, x);
        let restart = never_learned(self.run, self.diagnosis);
        let then = if restart {
            say!(
                self.lang,
                "; no epoch was better than chance, so restart from fresh weights: the current ones hold nothing worth keeping",
                "；没有一轮好于随机猜测，因此重新初始化权重：当前权重没有值得保留的内容"
            )
        } else {
            say!(
                self.lang,
                "; go back to the best checkpoint",
                "；恢复最佳检查点"
            )
        };
        let rationale = format!(
            "{evidence}; {}{then}",
            self.range_cut_text(lr, x, new, rescue)
        );
        let before = self.changes.len();
        self.propose(lr, new, rationale, 0.8);
        if self.changes.len() > before {
            self.actions.push(if restart {
                Action::Restart
            } else {
                Action::RestoreCheckpoint
            });
        }
    }

    /// A rate already high (Adam-family ≥ 3× its usual 1e-3, or any rate the config check
    /// found above its range) whose validation loss has made no new best for 2 epochs: cut
    /// it as soon as ReduceLROnPlateau(patience=2) would, and into the range when it is
    /// above it. A run at an ordinary rate is left to the plateau detector.
    pub(super) fn high_rate_stall(&mut self) {
        let Some(lr) = self.run.tunable("learning_rate") else {
            return;
        };
        // A rate already changed, or a run the other rules have decided to stop.
        if self.changes.iter().any(|c| c.parameter == lr.path)
            || self.actions.contains(&Action::StopEarly)
        {
            return;
        }
        let extreme = self.extreme_high();
        let adaptive = !self.is_sgd()
            && self
                .run
                .facts
                .optimizer
                .as_deref()
                .is_some_and(|o| o.contains("adam") || o.contains("rmsprop"));
        let high = extreme.is_some()
            || (adaptive && lr.value >= HIGH_RATE_FACTOR * USUAL_LR_ADAPTIVE * (1.0 - 1e-9));
        if !high {
            return;
        }
        let Some(series) = [Canonical::ValLoss, Canonical::Loss]
            .into_iter()
            .find_map(|c| self.run.metrics.get(c))
        else {
            return;
        };
        let since = crate::history::rolled_back_through(&self.run.history);
        let points: Vec<_> = series
            .tail(RECENT_POINTS)
            .into_iter()
            .filter(|p| since.is_none_or(|e| p.epoch > e))
            .collect();
        if points.iter().any(|p| !p.value.is_finite()) {
            return;
        }
        let Some(mut best) = points.first().copied() else {
            return;
        };
        let mut wait = 0u32;
        for p in &points[1..] {
            if p.value < best.value * (1.0 - NEW_BEST_MARGIN) {
                best = *p;
                wait = 0;
            } else {
                wait += 1;
            }
        }
        if wait < HIGH_RATE_PATIENCE {
            return;
        }
        if self.would_reverse(lr, -1.0) {
            return;
        }
        let lang = self.lang;
        let stalled = say!(
            lang,
            "{} has made no new best for {} epochs (best {} at epoch {}, now {})",
            "{} 已 {} 轮没有新的最佳值（第 {3} 轮最佳 {2}，当前 {4}）",
            series.original,
            wait,
            num(best.value),
            best.epoch,
            num(points.last().map_or(f64::NAN, |p| p.value))
        );
        let rationale = match extreme {
            Some(x) => {
                let (new, rescue) = self.cut_into_range(lr, x);
                let text = self.range_cut_text(lr, x, new, rescue);
                self.propose(lr, new, format!("{stalled}; {text}"), 0.6);
                return;
            }
            None => say!(
                lang,
                "{stalled} at a learning rate of {}, already {}× the usual {} for {}: cut it as soon as ReduceLROnPlateau(patience=2) would, {} → {}",
                "{stalled}，而学习率 {} 已是 {3} 常用值 {2} 的 {1} 倍：像 ReduceLROnPlateau(patience=2) 一样及时降低，{4} → {5}",
                num(lr.value),
                num(lr.value / USUAL_LR_ADAPTIVE),
                num(USUAL_LR_ADAPTIVE),
                self.optimizer_name(),
                num(lr.value),
                num(lr.value * PLATEAU_LR_FACTOR)
            ),
        };
        self.propose(lr, lr.value * PLATEAU_LR_FACTOR, rationale, 0.6);
    }

    pub(super) fn plateau(&mut self, f: &Finding) {
        let lang = self.lang;
        // A schedule that already decayed the rate far below the config's value explains
        // the plateau: the run has converged at this rate, and another cut changes nothing.
        let logged = self.run.metrics.get(Canonical::Lr).and_then(|s| s.last());
        if let (Some(lr), Some(now)) = (self.run.tunable("learning_rate"), logged)
            && now.value.is_finite()
            && now.value < lr.value * SCHEDULE_DECAYED
        {
            self.actions
                .extend([Action::RestoreCheckpoint, Action::StopEarly]);
            self.advice.push(say!(
                lang,
                "{} The schedule has already lowered the learning rate to {} at epoch {} (the config starts it at {}), so a further cut cannot help: stop and keep the best epoch ({}).",
                "{} 调度器已在第 {2} 轮把学习率降到 {1}（配置中的初始值为 {3}），继续降低无益：请停止训练并保留最佳轮次（第 {4} 轮）。",
                f.summary,
                num(now.value),
                now.epoch,
                num(lr.value),
                ev_text(f, "best_epoch")
            ));
            return;
        }
        // A cut made for this plateau that brought no new best is the evidence that the
        // run has converged: cutting again only slows it further (ReduceLROnPlateau keeps
        // cutting to min_lr; a practitioner stops).
        let best_epoch = f.evidence.get("best_epoch").and_then(Value::as_u64);
        let unhelpful = self.run.tunable("learning_rate").and_then(|lr| {
            self.run.history.iter().rev().find(|e| {
                e.findings.iter().any(|id| id == "plateau")
                    && e.changes.iter().any(|c| c.parameter == lr.path)
            })
        });
        // Judged once the cut has had its cooldown to show an effect.
        let settled = self.run.tunable("learning_rate").is_some_and(|lr| {
            in_cooldown(&self.run.history, &lr.path, self.run.facts.epochs_done).is_none()
        });
        if let (Some(cut), Some(best)) = (unhelpful, best_epoch)
            && settled
            && cut.epoch.is_some_and(|e| u64::from(e) >= best)
        {
            let change = cut.changes.iter().find(|c| c.canonical == "learning_rate");
            self.actions
                .extend([Action::RestoreCheckpoint, Action::StopEarly]);
            self.advice.push(say!(
                lang,
                "{} The learning rate was already cut for this plateau at epoch {} ({}) and the best has not improved since (epoch {}): the run has converged at this budget, so stop and keep the best epoch.",
                "{} 已在第 {1} 轮因平台期降低过学习率（{2}），此后最佳值没有改善（第 {3} 轮）：训练已收敛，请停止并保留最佳轮次。",
                f.summary,
                cut.epoch.map_or("?".into(), |e| e.to_string()),
                change.map_or(String::new(), |c| format!("{} → {}", value_text(&c.old), value_text(&c.new))),
                best
            ));
            return;
        }
        if let Some(lr) = self.run.tunable("learning_rate") {
            let floor = self.run.tunable("min_lr").map(|t| t.value).unwrap_or(0.0);
            if lr.value * PLATEAU_LR_FACTOR < floor {
                self.actions
                    .extend([Action::RestoreCheckpoint, Action::StopEarly]);
                self.advice.push(say!(
                    lang,
                    "{}; the learning rate {} is already near its floor min_lr = {}, so further cuts cannot help: stop and keep the best epoch",
                    "{}；学习率 {} 已接近下限 min_lr = {}，继续降低无益：请停止训练并保留最佳轮次",
                    f.summary,
                    num(lr.value),
                    num(floor)
                ));
                return;
            }
        }
        self.reduce_lr(f, PLATEAU_LR_FACTOR, 0.6);
    }

    pub(super) fn reduce_lr(&mut self, f: &Finding, factor: f64, confidence: f64) {
        let lang = self.lang;
        let Some(lr) = self.run.tunable("learning_rate") else {
            self.advice.push(say!(
                lang,
                "{} The config has no learning-rate key: lower the learning rate in the training script.",
                "{} 配置中没有学习率键：请在训练脚本中降低学习率。",
                f.summary
            ));
            return;
        };
        if self.would_reverse(lr, -1.0) {
            return;
        }
        let mut new = lr.value * factor;
        // A cut that leaves the rate above its range goes into it (3 → 1.5 is still 12×
        // above SGD's range; 3 → 0.0125 is in it).
        let into_range = self
            .extreme_high()
            .filter(|x| new > ev_num(x, "high"))
            .map(|x| {
                let (to, rescue) = self.cut_into_range(lr, x);
                new = to;
                self.range_cut_text(lr, x, to, rescue)
            });
        let why = match f.id {
            FindingId::Oscillation => say!(
                lang,
                "{} swung {} times over {} epochs (amplitude {}) with a net change ({}) smaller than one swing: the step is too large for the valley, so halve the learning rate ({} → {})",
                "{0} 在 {2} 轮内摆动 {1} 次（幅度 {3}），净变化（{4}）小于一次摆动：步长对当前区域太大，学习率减半（{5} → {6}）",
                ev_str(f, "series").unwrap_or("loss"),
                ev_text(f, "swings"),
                ev_text(f, "window_epochs"),
                ev_text(f, "amplitude"),
                ev_text(f, "net_change"),
                num(lr.value),
                num(new)
            ),
            _ => say!(
                lang,
                "{} has not improved on its best {} (epoch {}) for {} epochs after falling from {}: a smaller step can settle into the minimum, so cut the learning rate {} → {}",
                "{0} 自第 {2} 轮的最佳值 {1} 以来已 {3} 轮没有改善（起始 {4}）：更小的步长有助于收敛，学习率 {5} → {6}",
                ev_str(f, "series").unwrap_or("val_loss"),
                ev_text(f, "best"),
                ev_text(f, "best_epoch"),
                ev_text(f, "epochs_since_best"),
                ev_text(f, "first"),
                num(lr.value),
                num(new)
            ),
        };
        let why = match into_range {
            Some(text) => format!(
                "{}; {text}",
                why.rsplit_once(", so ")
                    .map_or(why.as_str(), |(head, _)| head)
            ),
            None => why,
        };
        self.propose(lr, new, why, confidence);
    }

    /// A run that diverged earlier and whose rate is still above its optimizer's usual
    /// range gets cut again once the cooldown is over: one ×10 cut from a rate 1000× too
    /// high leaves it 100× too high. Without the earlier divergence, a high rate on a run
    /// that trains well is only advice.
    pub(super) fn still_too_high_after_divergence(&mut self, f: &Finding) {
        if ev_str(f, "direction") != Some("high")
            || self
                .changes
                .iter()
                .any(|c| Some(c.parameter.as_str()) == ev_str(f, "parameter"))
        {
            return;
        }
        let Some(diverged) = self
            .run
            .history
            .iter()
            .rev()
            .find(|e| e.findings.iter().any(|id| id == "divergence"))
        else {
            return;
        };
        let Some(lr) = self.run.tunable("learning_rate") else {
            return;
        };
        if lr.value * DIVERGENCE_LR_FACTOR > ev_num(f, "high") {
            let (to, rescue) = self.cut_into_range(lr, f);
            let text = self.range_cut_text(lr, f, to, rescue);
            let rationale = say!(
                self.lang,
                "the run diverged at epoch {}; {text}",
                "训练曾在第 {} 轮发散；{text}",
                diverged.epoch.map_or("?".into(), |e| e.to_string())
            );
            self.propose(lr, to, rationale, 0.7);
            return;
        }
        let new = lr.value * DIVERGENCE_LR_FACTOR;
        let rationale = say!(
            self.lang,
            "the run diverged at epoch {} and the learning rate is still {}, above the usual range for {} (≤ {}): cut it 10× again, to {}",
            "训练曾在第 {} 轮发散，学习率仍为 {}，高于 {} 的常用范围（≤ {}）：再降低 10 倍，到 {}",
            diverged.epoch.map_or("?".into(), |e| e.to_string()),
            num(lr.value),
            self.optimizer_name(),
            ev_text(f, "high"),
            num(new)
        );
        self.propose(lr, new, rationale, 0.7);
    }

    /// A rate retune itself raised because the loss did not move, that is still well below
    /// its optimizer's usual value, and whose raise sped the run up: raise again. The
    /// earlier raise is the evidence the rate was too low, so a run deliberately trained at
    /// a low rate (fine-tuning) is never touched by this rule.
    pub(super) fn keep_raising_while_it_helps(&mut self) {
        let Some(lr) = self.run.tunable("learning_rate") else {
            return;
        };
        let usual = if self.is_sgd() {
            USUAL_LR_SGD
        } else {
            USUAL_LR_ADAPTIVE
        };
        if lr.value >= usual / BELOW_USUAL || self.changes.iter().any(|c| c.parameter == lr.path) {
            return;
        }
        let Some((entry, change)) = crate::history::last_change(&self.run.history, &lr.path) else {
            return;
        };
        let raised = change
            .new
            .as_f64()
            .zip(change.old.as_f64())
            .is_some_and(|(n, o)| n > o);
        let barely_moved = entry
            .findings
            .iter()
            .any(|f| f == "slow_convergence" || f == "chance_level");
        let (Some(then), Some(now)) = (
            entry.metric("loss"),
            self.run
                .metrics
                .get(Canonical::Loss)
                .and_then(|s| s.last())
                .map(|p| p.value),
        ) else {
            return;
        };
        if !(raised && barely_moved && now < then) {
            return;
        }
        let new = lr.value * SLOW_LR_FACTOR;
        let rationale = say!(
            self.lang,
            "raising the learning rate at epoch {} ({} → {}) got the loss moving ({} → {} since), and {} is still well below the usual {} for {}: raise it 3× again, to {}",
            "第 {0} 轮提高学习率（{1} → {2}）后损失开始下降（此后 {3} → {4}），而 {5} 仍远低于 {7} 的常用值 {6}：再提高 3 倍，到 {8}",
            entry.epoch.map_or("?".into(), |e| e.to_string()),
            value_text(&change.old),
            value_text(&change.new),
            num(then),
            num(now),
            num(lr.value),
            num(usual),
            self.optimizer_name(),
            num(new)
        );
        self.propose(lr, new, rationale, 0.5);
    }
}
