//! Evaluation: every rule measured against a source at `now`, each alert's state advanced,
//! ended silences dropped, and which alerts are silenced or inhibited worked out.

use super::alert::AlertState;
use super::manager::AlertManager;
use super::source::MetricSource;

impl AlertManager {
    /// Evaluates every rule at `now` (milliseconds since the epoch) against `source`.
    pub fn evaluate(&mut self, now: u64, source: &dyn MetricSource) {
        let now_s = now / 1000;
        for (rule, alert) in self.rules.iter().zip(self.alerts.iter_mut()) {
            let measured = rule.measure(source, now_s);
            alert.step(rule, measured, now);
        }
        self.refresh_mutes(now);
    }

    /// Drops ended silences and marks the alerts silenced or inhibited at `now`.
    pub(crate) fn refresh_mutes(&mut self, now: u64) {
        self.silences.retain(|s| now < s.ends_at);
        let labels: Vec<_> = self
            .rules
            .iter()
            .zip(&self.alerts)
            .map(|(r, a)| a.labels(r))
            .collect();
        let firing: Vec<usize> = (0..self.alerts.len())
            .filter(|i| self.alerts[*i].state == AlertState::Firing)
            .collect();
        for (i, alert) in self.alerts.iter_mut().enumerate() {
            if alert.state == AlertState::Inactive {
                alert.silenced = false;
                alert.inhibited = false;
                continue;
            }
            alert.silenced = self.silences.iter().any(|s| s.mutes(&labels[i], now));
            alert.inhibited = self.inhibits.iter().any(|inh| {
                firing
                    .iter()
                    .any(|j| *j != i && inh.mutes(&labels[*j], &labels[i]))
            });
        }
    }
}
