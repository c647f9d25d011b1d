//! Trend analysis: a least-squares line through a window of points, like Prometheus's
//! `predict_linear`, and the time until a series reaches a level (disk full, say).

use serde::Serialize;

/// A fitted line `v = slope * t + intercept` (t in seconds).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Trend {
    /// Change per second.
    pub slope: f64,
    /// Value at t = 0.
    pub intercept: f64,
    /// Points used.
    pub points: usize,
}

impl Trend {
    /// Fits a line through `(t, v)` points by least squares; `None` with fewer than two
    /// points or when every t is the same.
    pub fn fit(points: &[(f64, f64)]) -> Option<Trend> {
        let n = points.len();
        if n < 2 {
            return None;
        }
        let nf = n as f64;
        let (st, sv) = points
            .iter()
            .fold((0.0, 0.0), |(a, b), (t, v)| (a + t, b + v));
        let (mt, mv) = (st / nf, sv / nf);
        let (mut cov, mut var) = (0.0, 0.0);
        for (t, v) in points {
            cov += (t - mt) * (v - mv);
            var += (t - mt) * (t - mt);
        }
        if var == 0.0 || !var.is_finite() || !cov.is_finite() {
            return None;
        }
        let slope = cov / var;
        Some(Trend {
            slope,
            intercept: mv - slope * mt,
            points: n,
        })
    }

    /// The value the line predicts at time `t`.
    pub fn at(&self, t: f64) -> f64 {
        self.slope * t + self.intercept
    }

    /// Seconds from `now` until the line reaches `level`: `None` when flat or moving away
    /// from it (a level already passed counts as moving away: check the current value).
    pub fn time_to(&self, now: f64, level: f64) -> Option<f64> {
        let current = self.at(now);
        if current == level {
            return Some(0.0);
        }
        if self.slope == 0.0 {
            return None;
        }
        let dt = (level - current) / self.slope;
        (dt >= 0.0).then_some(dt)
    }
}

/// `predict_linear`: the value `horizon` seconds after the last point, from a line fitted to
/// the points.
pub fn predict_linear(points: &[(f64, f64)], horizon: f64) -> Option<f64> {
    let t = Trend::fit(points)?;
    let last = points.last()?.0;
    Some(t.at(last + horizon))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_line_and_predicts() {
        let pts: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64, 100.0 - 2.0 * i as f64))
            .collect();
        let t = Trend::fit(&pts).unwrap();
        assert!((t.slope + 2.0).abs() < 1e-9);
        assert!((t.intercept - 100.0).abs() < 1e-9);
        assert!((predict_linear(&pts, 10.0).unwrap() - 62.0).abs() < 1e-9);
        // From t = 9 (value 82), zero is reached 41 s later.
        assert!((t.time_to(9.0, 0.0).unwrap() - 41.0).abs() < 1e-9);
        // Moving away from the level: never.
        assert_eq!(t.time_to(9.0, 200.0), None);
    }

    #[test]
    fn degenerate_inputs_give_nothing() {
        assert!(Trend::fit(&[(1.0, 1.0)]).is_none());
        assert!(Trend::fit(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
        let flat = Trend::fit(&[(0.0, 5.0), (1.0, 5.0)]).unwrap();
        assert_eq!(flat.time_to(1.0, 0.0), None);
    }
}
