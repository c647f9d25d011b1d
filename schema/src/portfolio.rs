//! Positions and cash as pure folds of fills, at average cost.
//!
//! A position holds a signed quantity `Q` and a cost basis `C` with the sign of `Q` (the
//! signed notional paid to open what is still open). A fill of signed quantity `d` at price
//! `p`:
//! - that adds to the position (or opens it): `Q += d`, `C += notional(p, d)`;
//! - that reduces it: the closed part `c` (at most `|Q|`) takes `C * c / |Q|` of the basis
//!   (rounded half away from zero) and realises `sign(Q) * notional(p, c) - removed`;
//!   a remainder beyond `|Q|` opens a position on the other side at `p`.
//!
//! Fees are subtracted from realised P&L on every fill. Cash moves by `-(notional + fee)` on
//! a buy and `notional - fee` on a sell. The result depends on the order of fills (rounding
//! of the removed basis), so the fills of each position are applied, and folded by the
//! consistency check, in increasing trade id order: a position records the id of the last
//! fill applied and refuses an older one.

use crate::fixed::{Money, Quantity, div_round, notional};
use crate::records::{Position, Side, Trade};
use crate::rules::RuleViolation;

fn overflow(t: &Trade) -> RuleViolation {
    RuleViolation::new(
        "amount_overflow",
        format!("trade {}: an amount overflows 64 bits", t.id),
    )
}

/// The position after applying `t` to `pos` (`None`: no position yet).
pub fn apply_fill(pos: Option<&Position>, t: &Trade) -> Result<Position, RuleViolation> {
    let mut p = pos.cloned().unwrap_or(Position {
        account: t.account,
        instrument: t.instrument,
        quantity: Quantity::ZERO,
        cost_basis: Money::ZERO,
        realized_pnl: Money::ZERO,
        updated_ts: t.ts,
        last_trade_id: 0,
    });
    if t.id <= p.last_trade_id {
        return Err(RuleViolation::new(
            "fill_order",
            format!(
                "trade {}: fills of a position are applied in increasing id order, and trade {} is already applied to account {} instrument {}",
                t.id, p.last_trade_id, p.account, p.instrument
            ),
        ));
    }
    let d = i128::from(t.quantity.0) * i128::from(t.side.sign());
    let q = i128::from(p.quantity.0);
    let mut cost = i128::from(p.cost_basis.0);
    let mut realized = i128::from(p.realized_pnl.0);
    let signed_notional = |qty: i128| -> Result<i128, RuleViolation> {
        let qty = i64::try_from(qty).map_err(|_| overflow(t))?;
        notional(t.price, Quantity(qty))
            .map(|m| i128::from(m.0))
            .ok_or_else(|| overflow(t))
    };
    let new_q;
    if q == 0 || q.signum() == d.signum() {
        new_q = q + d;
        cost += signed_notional(d)?;
    } else {
        let close = d.abs().min(q.abs());
        let removed = div_round(cost * close, q.abs());
        realized += q.signum() * signed_notional(close)? - removed;
        cost -= removed;
        let rest = d.abs() - close;
        new_q = q + d;
        if rest > 0 {
            cost += signed_notional(rest * d.signum())?;
        }
    }
    realized -= i128::from(t.fee.0);
    p.quantity = Quantity(i64::try_from(new_q).map_err(|_| overflow(t))?);
    p.cost_basis = Money(i64::try_from(cost).map_err(|_| overflow(t))?);
    p.realized_pnl = Money(i64::try_from(realized).map_err(|_| overflow(t))?);
    p.updated_ts = p.updated_ts.max(t.ts);
    p.last_trade_id = t.id;
    Ok(p)
}

/// How a fill moves the account's cash in the instrument's currency.
pub fn cash_delta(t: &Trade) -> Result<Money, RuleViolation> {
    let n = notional(t.price, t.quantity).ok_or_else(|| overflow(t))?;
    let delta = match t.side {
        Side::Buy => n.checked_add(t.fee).map(|m| Money(-m.0)),
        Side::Sell => n.checked_sub(t.fee),
    };
    delta.ok_or_else(|| overflow(t))
}

/// Folds fills (already in increasing id order) into positions, as recording them one by
/// one would have. Used by the consistency check.
pub fn fold_fills<'a>(
    fills: impl IntoIterator<Item = &'a Trade>,
) -> Result<Option<Position>, RuleViolation> {
    let mut pos = None;
    for t in fills {
        pos = Some(apply_fill(pos.as_ref(), t)?);
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Price, Quantity};

    fn t(id: u64, side: Side, price: &str, qty: i64, fee: i64) -> Trade {
        Trade {
            id,
            order_id: 1,
            account: 1,
            instrument: 1,
            side,
            price: price.parse().unwrap(),
            quantity: Quantity::from_units(qty).unwrap(),
            fee: Money(fee),
            ts: id as i64,
        }
    }

    fn m(s: &str) -> Money {
        s.parse().unwrap()
    }

    #[test]
    fn long_open_add_reduce_close() {
        let p = apply_fill(None, &t(1, Side::Buy, "100", 10, 0)).unwrap();
        assert_eq!(
            (p.quantity.0, p.cost_basis),
            (Quantity::from_units(10).unwrap().0, m("1000"))
        );
        let p = apply_fill(Some(&p), &t(2, Side::Buy, "110", 10, 0)).unwrap();
        assert_eq!(p.cost_basis, m("2100"));
        let p = apply_fill(Some(&p), &t(3, Side::Sell, "120", 5, 0)).unwrap();
        // removes 2100 * 5/20 = 525, proceeds 600
        assert_eq!((p.cost_basis, p.realized_pnl), (m("1575"), m("75")));
        let p = apply_fill(Some(&p), &t(4, Side::Sell, "100", 15, 0)).unwrap();
        assert_eq!(
            (p.quantity, p.cost_basis, p.realized_pnl),
            (Quantity::ZERO, Money::ZERO, m("0"))
        );
    }

    #[test]
    fn short_and_flip() {
        let p = apply_fill(None, &t(1, Side::Sell, "100", 10, 0)).unwrap();
        assert_eq!(p.cost_basis, m("-1000"));
        // buy 4 at 80: removed -400, cost to close 320, realised 80
        let p = apply_fill(Some(&p), &t(2, Side::Buy, "80", 4, 0)).unwrap();
        assert_eq!((p.cost_basis, p.realized_pnl), (m("-600"), m("80")));
        // buy 10 at 90: closes 6 (removed -600, cost 540, +60) and opens 4 long at 90
        let p = apply_fill(Some(&p), &t(3, Side::Buy, "90", 10, 0)).unwrap();
        assert_eq!(p.quantity, Quantity::from_units(4).unwrap());
        assert_eq!((p.cost_basis, p.realized_pnl), (m("360"), m("140")));
    }

    #[test]
    fn fees_reduce_pnl_and_cash() {
        let buy = t(1, Side::Buy, "10", 3, 250_000);
        let p = apply_fill(None, &buy).unwrap();
        assert_eq!(p.realized_pnl, m("-0.25"));
        assert_eq!(cash_delta(&buy).unwrap(), m("-30.25"));
        let sell = t(2, Side::Sell, "10", 3, 250_000);
        assert_eq!(cash_delta(&sell).unwrap(), m("29.75"));
    }

    #[test]
    fn fold_equals_stepwise() {
        let fills = [
            t(1, Side::Buy, "10", 3, 1),
            t(2, Side::Sell, "11", 7, 2),
            t(3, Side::Buy, "9.5", 1, 0),
        ];
        let mut step = None;
        for f in &fills {
            step = Some(apply_fill(step.as_ref(), f).unwrap());
        }
        assert_eq!(fold_fills(&fills).unwrap(), step);
    }

    #[test]
    fn overflow_is_an_error() {
        let mut big = t(1, Side::Buy, "1", 1, 0);
        big.price = Price(i64::MAX);
        big.quantity = Quantity(i64::MAX);
        assert_eq!(apply_fill(None, &big).unwrap_err().rule, "amount_overflow");
    }
}
