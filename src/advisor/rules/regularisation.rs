//! Regularisation and the logged signals: overfitting (only when training is clearly
//! better than validation), gradient norms (clipping where the config has the lever), and
//! advice for what no config key can fix.

use super::*;

impl<'a> Plan<'a> {
    pub(super) fn clip_advice(&mut self) {
        if let Some(clip) = self.run.tunable("gradient_clip") {
            self.advice.push(say!(
                self.lang,
                "gradient clipping ({} = {}) did not prevent the blow-up; make sure it is enabled",
                "梯度裁剪（{} = {}）没有阻止发散；请确认它已启用",
                clip.path,
                num(clip.value)
            ));
        }
    }

    /// Whether the training side is clearly better than validation, in every pair of
    /// series the run logs (loss, accuracy): `Ok` with the numbers, or `Err` with the
    /// numbers that show it is not. A run that logs no pair is taken at the detector's word.
    pub(super) fn training_clearly_better(&self) -> Result<String, String> {
        let last = |c: Canonical| {
            self.run
                .metrics
                .get(c)
                .and_then(|s| s.last())
                .map(|p| p.value)
                .filter(|v| v.is_finite())
        };
        let mut shown = Vec::new();
        let mut better = true;
        if let (Some(train), Some(val)) = (last(Canonical::Loss), last(Canonical::ValLoss)) {
            better &= val >= train * (1.0 + OVERFIT_LOSS_RATIO);
            shown.push(say!(
                self.lang,
                "loss {} against val_loss {}",
                "训练损失 {}，验证损失 {}",
                num(train),
                num(val)
            ));
        }
        if let (Some(train), Some(val)) = (last(Canonical::Accuracy), last(Canonical::ValAccuracy))
        {
            better &= train - val >= OVERFIT_ACCURACY_GAP;
            shown.push(say!(
                self.lang,
                "accuracy {} against val_accuracy {}",
                "训练准确率 {}，验证准确率 {}",
                num(train),
                num(val)
            ));
        }
        let text = shown.join(", ");
        if better { Ok(text) } else { Err(text) }
    }

    /// Gradient-norm spikes, a rising norm and a loss spike the run survived: clip where the config has a clipping key
    /// (at 2× the run's typical norm), lower the rate for a rising norm, say what to add
    /// to the training script otherwise.
    pub(super) fn gradient_norm(&mut self) {
        let d = self.diagnosis;
        let Some(f) = d
            .get(FindingId::GradNormSpike)
            .or_else(|| d.get(FindingId::GradNormRising))
            .or_else(|| {
                // A validation loss that spiked alone came from an evaluation, not a step.
                d.get(FindingId::LossSpike)
                    .filter(|f| f.evidence.get("series").and_then(|s| s.as_str()) == Some("loss"))
            })
        else {
            return;
        };
        let lang = self.lang;
        let evidence = sentence(&f.summary);
        let typical = self.run.metrics.get(Canonical::GradNorm).and_then(|s| {
            let mut v: Vec<f64> = s
                .tail(RECENT_POINTS)
                .into_iter()
                .map(|p| p.value)
                .filter(|v| v.is_finite() && *v > 0.0)
                .collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied()
        });
        let clip_at = typical.map(|t| t * CLIP_OVER_TYPICAL);
        if let Some(clip) = self.run.tunable("gradient_clip") {
            // A threshold at or below the typical norm already clips most steps: a smaller
            // one would only shrink every step, which the rate does more plainly.
            let loose = clip.value <= 0.0 || clip_at.is_some_and(|c| clip.value > c * (1.0 + 1e-9));
            if loose {
                let new = clip_at.unwrap_or(CLIP_DEFAULT);
                let why = match typical {
                    Some(t) => say!(
                        lang,
                        "{evidence}; clip gradients at {} (2× the typical norm {} of this run), so a spike cannot throw the weights while ordinary steps stay as they are: {} {} → {}",
                        "{evidence}；把梯度裁剪到 {}（本次训练典型范数 {} 的 2 倍），使尖峰无法打乱权重而普通步长不受影响：{} {} → {}",
                        num(new),
                        num(t),
                        clip.path,
                        num(clip.value),
                        num(new)
                    ),
                    None => say!(
                        lang,
                        "{evidence}; gradient clipping is off ({} = {}): turn it on at {}, the HF Trainer's default",
                        "{evidence}；梯度裁剪已关闭（{} = {}）：打开并设为 {}（HF Trainer 的默认值）",
                        clip.path,
                        num(clip.value),
                        num(new)
                    ),
                };
                self.propose(clip, new, why, 0.6);
                return;
            }
            self.reduce_for_grad_norm(&evidence, Some(clip));
            return;
        }
        if f.id == FindingId::GradNormRising {
            self.reduce_for_grad_norm(&evidence, None);
            return;
        }
        self.advice.push(say!(
            lang,
            "{evidence}. The config has no gradient-clipping key: clip in the training script{} (max_grad_norm, gradient_clip_val, clipnorm), which keeps one bad batch from throwing the weights.",
            "{evidence}。配置中没有梯度裁剪键：请在训练脚本中裁剪梯度{}（max_grad_norm、gradient_clip_val、clipnorm），避免单个异常批次打乱权重。",
            clip_at
                .map(|c| say!(lang, " at about {}", "，阈值约 {}", num(c)))
                .unwrap_or_default()
        ));
    }

    pub(super) fn reduce_for_grad_norm(&mut self, evidence: &str, clip: Option<&Tunable>) {
        let lang = self.lang;
        let Some(lr) = self.run.tunable("learning_rate") else {
            self.advice.push(say!(
                lang,
                "{evidence}. The config has no learning-rate key to lower: lower the rate or clip gradients in the training script.",
                "{evidence}。配置中没有学习率键可以调低：请在训练脚本中降低学习率或裁剪梯度。"
            ));
            return;
        };
        if self.changes.iter().any(|c| c.parameter == lr.path) || self.would_reverse(lr, -1.0) {
            return;
        }
        let clipping = clip
            .map(|c| {
                say!(
                    lang,
                    " gradients are already clipped at {} = {},",
                    "梯度已按 {} = {} 裁剪，",
                    c.path,
                    num(c.value)
                )
            })
            .unwrap_or_default();
        let new = lr.value * GRAD_NORM_LR_FACTOR;
        let rationale = say!(
            lang,
            "{evidence};{clipping} so the steps are too large for this region: halve the learning rate ({} → {})",
            "{evidence}；{clipping}说明步长对当前区域过大：学习率减半（{} → {}）",
            num(lr.value),
            num(new)
        );
        self.propose(lr, new, rationale, 0.5);
    }

    /// Findings about the data or the logging rather than the settings: what to check,
    /// changing nothing.
    pub(super) fn signal_advice(&mut self) {
        let lang = self.lang;
        for f in &self.diagnosis.findings {
            let evidence = sentence(&f.summary);
            let text = match f.id {
                FindingId::DegenerateLoss => say!(
                    lang,
                    "{evidence}. A loss this close to zero this early means the task is trivial as the model sees it: check for label leakage (the label or an ID that encodes it among the inputs), training examples duplicated into validation, a constant label, or a loss masked to almost nothing. No setting fixes this, so nothing is changed.",
                    "{evidence}。这么早就接近零的损失说明模型看到的任务过于简单：请检查标签泄漏（输入中含有标签或编码标签的 ID）、训练样本是否重复出现在验证集中、标签是否恒定、损失是否几乎被全部屏蔽。调参无法解决，因此不做修改。"
                ),
                FindingId::AccuracyPinned if self.extreme_high().is_none() => say!(
                    lang,
                    "{evidence}. An accuracy that stays on one value is usually the model predicting one class (the majority share): check the labels and the class balance, and weight the classes (class_weight) or balance the sampler. Nothing in the config is a lever for it, so nothing is changed.",
                    "{evidence}。准确率停在同一个值通常说明模型只预测一个类别（多数类占比）：请检查标签和类别分布，并使用类别权重（class_weight）或均衡采样。配置中没有对应的可调项，因此不做修改。"
                ),
                FindingId::MetricOutOfRange => say!(
                    lang,
                    "{evidence}. An accuracy above 1 or a negative loss is how the metric is computed or logged (summed instead of averaged, a wrong reduction, a loss with a negative term), not a setting: fix the metric before trusting any other finding.",
                    "{evidence}。准确率大于 1 或损失为负是指标计算或记录的问题（求和而非平均、错误的归约、带负项的损失），不是超参数问题：请先修正指标，再参考其他诊断。"
                ),
                FindingId::WarmupUnfinished => say!(
                    lang,
                    "{evidence}. The learning rate was still rising when the log ends: the warmup may be longer than the run (compare warmup_steps or warmup_ratio with the total steps), so the run never trained at its peak rate. The scheduler reads it only at the start: fix it before the next run.",
                    "{evidence}。日志结束时学习率仍在上升：预热可能比整个训练还长（请对比 warmup_steps 或 warmup_ratio 与总步数），训练从未达到峰值学习率。调度器只在开始时读取该值：请在下次训练前修改。"
                ),
                FindingId::ValAtChance => say!(
                    lang,
                    "{evidence}. Validation at chance while training learns points at the validation data, not at the model: check that the validation labels use the training's label mapping, that the split was not shuffled apart from its labels, and that validation inputs get the same preprocessing. Regularisation would not help, so none is added.",
                    "{evidence}。训练在学习而验证处于随机水平，问题在验证数据而不在模型：请检查验证标签是否使用与训练相同的映射、划分时标签是否与输入分开打乱、验证输入是否经过相同的预处理。正则化无济于事，因此不添加。"
                ),
                _ => continue,
            };
            self.advice.push(text);
        }
    }

    /// Add regularisation where the config has a lever; otherwise stop at the best epoch.
    pub(super) fn overfitting(&mut self, f: &Finding) {
        let lang = self.lang;
        let evidence = say!(
            lang,
            "{} rose for {} epochs to {} (best {} at epoch {}) while {} kept falling to {}",
            "{} 连续 {} 轮上升到 {}（最佳 {}，第 {} 轮），而 {} 持续下降到 {}",
            ev_str(f, "val_series").unwrap_or("val_loss"),
            ev_text(f, "rising_epochs"),
            ev_text(f, "val_last"),
            ev_text(f, "val_best"),
            ev_text(f, "val_best_epoch"),
            ev_str(f, "train_series").unwrap_or("loss"),
            ev_text(f, "train_last")
        );
        // Regularisation answers a model that fits its training data better than it
        // generalises. Validation at chance is the validation data's problem, and a rate
        // far above its range keeps the model from fitting at all: neither is overfitting.
        if self.diagnosis.has(FindingId::ValAtChance) {
            return;
        }
        if self.extreme_high().is_some() {
            self.advice.push(say!(
                lang,
                "{evidence}, but the learning rate is above the usual range for {}: a rate that high keeps the model from fitting, so no regularisation is added before the rate is fixed",
                "{evidence}，但学习率高于 {} 的常用范围：这么高的学习率会使模型无法拟合，因此在修正学习率之前不添加正则化",
                self.optimizer_name()
            ));
            return;
        }
        let gap = match self.training_clearly_better() {
            Ok(gap) => gap,
            Err(gap) => {
                self.advice.push(say!(
                    lang,
                    "{evidence}, but the training side is not clearly better than validation ({gap}): the model has not fitted its training data, so this is not overfitting and regularisation would make it worse; nothing is added for it",
                    "{evidence}，但训练集上的表现并不明显好于验证集（{gap}）：模型尚未拟合训练数据，这不是过拟合，正则化只会更糟；因此不为此添加正则化"
                ));
                return;
            }
        };
        let evidence = if gap.is_empty() {
            evidence
        } else {
            format!("{evidence} ({gap})")
        };
        let mut regularised = false;
        if let Some(dropout) = self
            .run
            .tunable("dropout")
            .filter(|t| t.value < DROPOUT_CEILING)
        {
            let new = (dropout.value + DROPOUT_STEP).min(DROPOUT_CEILING);
            let rationale = say!(
                lang,
                "{evidence}: the model memorises the training set; raise dropout {} → {}",
                "{evidence}：模型在记忆训练集；dropout 提高 {} → {}",
                num(dropout.value),
                num(new)
            );
            self.propose(dropout, new, rationale, 0.6);
            regularised = true;
        }
        if let Some(wd) = self.run.tunable("weight_decay") {
            let new = if wd.value > 0.0 {
                wd.value * WEIGHT_DECAY_FACTOR
            } else {
                WEIGHT_DECAY_START
            };
            let rationale = say!(
                lang,
                "{evidence}; stronger weight decay ({} → {}) penalises the large weights memorisation needs",
                "{evidence}；加大权重衰减（{} → {}）以抑制记忆训练集所需的大权重",
                num(wd.value),
                num(new)
            );
            self.propose(wd, new, rationale, 0.55);
            regularised = true;
        }
        self.actions.push(Action::RestoreCheckpoint);
        if !regularised {
            self.actions.push(Action::StopEarly);
            self.advice.push(say!(
                lang,
                "{evidence}. The config has no dropout or weight-decay key to raise, so stop here and keep the weights of epoch {}; add regularisation (dropout, weight decay, augmentation) to the training script for the next run.",
                "{evidence}。配置中没有可提高的 dropout 或权重衰减键，因此在此停止并保留第 {} 轮的权重；下次训练请在脚本中加入正则化（dropout、权重衰减、数据增强）。",
                ev_text(f, "val_best_epoch")
            ));
        }
    }
}
