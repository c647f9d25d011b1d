//! Business rules as pure functions. Storage calls them on every write; the consistency
//! check calls them on every row.

use std::fmt;

use crate::fixed::Quantity;
use crate::records::{Account, Cash, Instrument, Order, OrderKind, OrderStatus, Trade};

/// A record that breaks a business rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleViolation {
    /// A short stable name of the rule, e.g. `quantity_positive`.
    pub rule: &'static str,
    /// What is wrong, naming the record and values.
    pub message: String,
}

impl RuleViolation {
    /// A violation of `rule`.
    pub fn new(rule: &'static str, message: impl Into<String>) -> RuleViolation {
        RuleViolation {
            rule,
            message: message.into(),
        }
    }
}

impl fmt::Display for RuleViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.rule)
    }
}

impl std::error::Error for RuleViolation {}

fn ensure(
    cond: bool,
    rule: &'static str,
    msg: impl FnOnce() -> String,
) -> Result<(), RuleViolation> {
    if cond {
        Ok(())
    } else {
        Err(RuleViolation::new(rule, msg()))
    }
}

fn valid_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 16
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_' || b == b'/')
}

/// Whether `value` is a whole multiple of `step`. A step that is not positive (an
/// instrument that breaks its own rule, as a hostile dump may hold) has no multiples: the
/// check reports the instrument and this rule instead of dividing by zero.
fn on_step(value: i64, step: i64) -> bool {
    step > 0 && value.checked_rem(step) == Some(0)
}

/// An instrument: a symbol and currency of 1-16 ASCII letters, digits or `.-_/`,
/// positive tick and lot.
pub fn validate_instrument(i: &Instrument) -> Result<(), RuleViolation> {
    ensure(valid_code(&i.symbol), "symbol_format", || {
        format!(
            "instrument {}: symbol {:?} must be 1-16 ASCII letters, digits or .-_/",
            i.id, i.symbol
        )
    })?;
    ensure(valid_code(&i.currency), "currency_format", || {
        format!(
            "instrument {}: currency {:?} must be 1-16 ASCII letters or digits",
            i.id, i.currency
        )
    })?;
    ensure(i.tick_size.0 > 0, "tick_size_positive", || {
        format!("instrument {}: tick_size {} must be > 0", i.id, i.tick_size)
    })?;
    ensure(i.lot_size.0 > 0, "lot_size_positive", || {
        format!("instrument {}: lot_size {} must be > 0", i.id, i.lot_size)
    })
}

/// An account: a non-empty name of at most 256 bytes.
pub fn validate_account(a: &Account) -> Result<(), RuleViolation> {
    ensure(
        !a.name.is_empty() && a.name.len() <= 256,
        "account_name",
        || format!("account {}: name must be 1-256 bytes", a.id),
    )
}

/// A cash balance: a well-formed currency.
pub fn validate_cash(c: &Cash) -> Result<(), RuleViolation> {
    ensure(valid_code(&c.currency), "currency_format", || {
        format!(
            "cash of account {}: currency {:?} is malformed",
            c.account, c.currency
        )
    })
}

/// The status an order with this fill state may have.
fn status_matches_fill(status: OrderStatus, filled: Quantity, quantity: Quantity) -> bool {
    match status {
        OrderStatus::New | OrderStatus::Rejected => filled.0 == 0,
        OrderStatus::PartiallyFilled => filled.0 > 0 && filled < quantity,
        OrderStatus::Filled => filled == quantity,
        OrderStatus::Cancelled => filled < quantity,
    }
}

/// An order against its instrument: quantity > 0 on the lot; a limit order has a positive
/// price on the tick, a market order none; 0 <= filled <= quantity; the status agrees with
/// the filled quantity; the account and instrument match the order's references.
pub fn validate_order(o: &Order, instrument: &Instrument) -> Result<(), RuleViolation> {
    ensure(o.instrument == instrument.id, "order_instrument", || {
        format!(
            "order {}: instrument {} given, order names {}",
            o.id, instrument.id, o.instrument
        )
    })?;
    ensure(o.quantity.0 > 0, "quantity_positive", || {
        format!("order {}: quantity {} must be > 0", o.id, o.quantity)
    })?;
    ensure(
        on_step(o.quantity.0, instrument.lot_size.0),
        "quantity_on_lot",
        || {
            format!(
                "order {}: quantity {} is not a multiple of the lot size {}",
                o.id, o.quantity, instrument.lot_size
            )
        },
    )?;
    match (o.kind, o.price) {
        (OrderKind::Limit, None) => {
            return Err(RuleViolation::new(
                "limit_has_price",
                format!("order {}: a limit order needs a price", o.id),
            ));
        }
        (OrderKind::Limit, Some(p)) => {
            ensure(p.0 > 0, "price_positive", || {
                format!("order {}: price {p} must be > 0", o.id)
            })?;
            ensure(
                on_step(p.0, instrument.tick_size.0),
                "price_on_tick",
                || {
                    format!(
                        "order {}: price {p} is not on the tick {}",
                        o.id, instrument.tick_size
                    )
                },
            )?;
        }
        (OrderKind::Market, Some(_)) => {
            return Err(RuleViolation::new(
                "market_has_no_price",
                format!("order {}: a market order has no price", o.id),
            ));
        }
        (OrderKind::Market, None) => {}
    }
    ensure(
        o.filled_quantity.0 >= 0 && o.filled_quantity <= o.quantity,
        "filled_within_quantity",
        || {
            format!(
                "order {}: filled_quantity {} must be within 0..={}",
                o.id, o.filled_quantity, o.quantity
            )
        },
    )?;
    ensure(
        status_matches_fill(o.status, o.filled_quantity, o.quantity),
        "status_matches_fill",
        || {
            format!(
                "order {}: status {} does not fit filled {} of {}",
                o.id, o.status, o.filled_quantity, o.quantity
            )
        },
    )?;
    ensure(
        o.updated_ts >= o.created_ts,
        "updated_after_created",
        || {
            format!(
                "order {}: updated_ts {} is before created_ts {}",
                o.id, o.updated_ts, o.created_ts
            )
        },
    )
}

/// Whether an order may move from `from` to `to`: `new -> partially_filled -> filled`,
/// any open status to `cancelled`, `new` to `rejected`; nothing leaves a terminal status.
/// Staying in the same open status is allowed (another partial fill).
pub fn check_transition(
    order_id: u64,
    from: OrderStatus,
    to: OrderStatus,
) -> Result<(), RuleViolation> {
    use OrderStatus::*;
    let ok = matches!(
        (from, to),
        (New, New | PartiallyFilled | Filled | Cancelled | Rejected)
            | (PartiallyFilled, PartiallyFilled | Filled | Cancelled)
    );
    ensure(ok, "status_transition", || {
        if from.is_terminal() {
            format!("order {order_id}: status {from} is terminal and cannot become {to}")
        } else {
            format!("order {order_id}: status cannot go from {from} to {to}")
        }
    })
}

/// An order update: the transition is legal and the immutable fields are unchanged.
pub fn validate_order_update(old: &Order, new: &Order) -> Result<(), RuleViolation> {
    ensure(
        old.account == new.account
            && old.instrument == new.instrument
            && old.side == new.side
            && old.kind == new.kind
            && old.created_ts == new.created_ts,
        "order_immutable_fields",
        || {
            format!(
                "order {}: account, instrument, side, kind and created_ts cannot change",
                old.id
            )
        },
    )?;
    if old.status.is_terminal() && old == new {
        return Ok(());
    }
    check_transition(old.id, old.status, new.status)?;
    ensure(
        new.filled_quantity >= old.filled_quantity,
        "filled_monotonic",
        || {
            format!(
                "order {}: filled_quantity cannot decrease ({} -> {})",
                old.id, old.filled_quantity, new.filled_quantity
            )
        },
    )
}

/// A fill against its order and instrument: positive quantity on the lot, positive price
/// on the tick and within the order's limit, non-negative fee, same account, instrument and
/// side as the order, an open order, and no overfill.
pub fn validate_fill(
    t: &Trade,
    order: &Order,
    instrument: &Instrument,
) -> Result<(), RuleViolation> {
    ensure(t.order_id == order.id, "fill_order", || {
        format!(
            "trade {}: names order {}, given {}",
            t.id, t.order_id, order.id
        )
    })?;
    ensure(
        t.account == order.account && t.instrument == order.instrument && t.side == order.side,
        "fill_matches_order",
        || {
            format!(
                "trade {}: account/instrument/side {}/{}/{} differ from order {}'s {}/{}/{}",
                t.id,
                t.account,
                t.instrument,
                t.side,
                order.id,
                order.account,
                order.instrument,
                order.side
            )
        },
    )?;
    ensure(t.quantity.0 > 0, "quantity_positive", || {
        format!("trade {}: quantity {} must be > 0", t.id, t.quantity)
    })?;
    ensure(
        on_step(t.quantity.0, instrument.lot_size.0),
        "quantity_on_lot",
        || {
            format!(
                "trade {}: quantity {} is not a multiple of the lot size {}",
                t.id, t.quantity, instrument.lot_size
            )
        },
    )?;
    ensure(t.price.0 > 0, "price_positive", || {
        format!("trade {}: price {} must be > 0", t.id, t.price)
    })?;
    ensure(
        on_step(t.price.0, instrument.tick_size.0),
        "price_on_tick",
        || {
            format!(
                "trade {}: price {} is not on the tick {}",
                t.id, t.price, instrument.tick_size
            )
        },
    )?;
    ensure(t.fee.0 >= 0, "fee_non_negative", || {
        format!("trade {}: fee {} must be >= 0", t.id, t.fee)
    })?;
    ensure(order.status.is_open(), "fill_open_order", || {
        format!(
            "trade {}: order {} is {} and takes no fills",
            t.id, order.id, order.status
        )
    })?;
    fill_within_limit(t, order)?;
    let after = order.filled_quantity.checked_add(t.quantity);
    ensure(
        after.is_some_and(|a| a <= order.quantity),
        "no_overfill",
        || {
            format!(
                "trade {}: {} more would overfill order {} ({} of {} filled)",
                t.id, t.quantity, order.id, order.filled_quantity, order.quantity
            )
        },
    )
}

/// A fill's price respects its order's limit (a buy at or below it, a sell at or above it).
/// Checked for every fill, and again for an order's earlier fills when it is re-priced.
pub fn fill_within_limit(t: &Trade, order: &Order) -> Result<(), RuleViolation> {
    let Some(limit) = order.price else {
        return Ok(());
    };
    let within = match order.side {
        crate::Side::Buy => t.price <= limit,
        crate::Side::Sell => t.price >= limit,
    };
    ensure(within, "fill_within_limit", || {
        format!(
            "trade {}: price {} breaks order {}'s {} limit {limit}",
            t.id, t.price, order.id, order.side
        )
    })
}

/// The order after a (validated) fill: filled quantity grows, the status follows.
pub fn order_after_fill(order: &Order, t: &Trade) -> Order {
    let mut o = order.clone();
    o.filled_quantity = Quantity(order.filled_quantity.0 + t.quantity.0);
    o.status = if o.filled_quantity == o.quantity {
        OrderStatus::Filled
    } else {
        OrderStatus::PartiallyFilled
    };
    o.updated_ts = o.updated_ts.max(t.ts);
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::*;
    use crate::{Money, Price};

    fn instrument() -> Instrument {
        Instrument {
            id: 1,
            symbol: "ACME".into(),
            tick_size: Price(1_000_000),
            lot_size: Quantity(100_000_000),
            currency: "USD".into(),
        }
    }

    fn order() -> Order {
        Order {
            id: 10,
            account: 5,
            instrument: 1,
            side: Side::Buy,
            kind: OrderKind::Limit,
            time_in_force: TimeInForce::Gtc,
            price: Some(Price(10_000_000_000)),
            quantity: Quantity(1_000_000_000),
            filled_quantity: Quantity(0),
            status: OrderStatus::New,
            created_ts: 100,
            updated_ts: 100,
        }
    }

    fn fill(q: i64) -> Trade {
        Trade {
            id: 1,
            order_id: 10,
            account: 5,
            instrument: 1,
            side: Side::Buy,
            price: Price(9_900_000_000),
            quantity: Quantity(q),
            fee: Money(10),
            ts: 200,
        }
    }

    #[test]
    fn valid_order_passes() {
        validate_order(&order(), &instrument()).unwrap();
    }

    #[test]
    fn quantity_must_be_positive_and_on_lot() {
        let mut o = order();
        o.quantity = Quantity(0);
        assert_eq!(
            validate_order(&o, &instrument()).unwrap_err().rule,
            "quantity_positive"
        );
        o.quantity = Quantity(-100_000_000);
        assert_eq!(
            validate_order(&o, &instrument()).unwrap_err().rule,
            "quantity_positive"
        );
        o.quantity = Quantity(150_000_000);
        assert_eq!(
            validate_order(&o, &instrument()).unwrap_err().rule,
            "quantity_on_lot"
        );
    }

    #[test]
    fn limit_price_on_tick_market_without_price() {
        let mut o = order();
        o.price = Some(Price(10_000_000_001));
        assert_eq!(
            validate_order(&o, &instrument()).unwrap_err().rule,
            "price_on_tick"
        );
        o.price = None;
        assert_eq!(
            validate_order(&o, &instrument()).unwrap_err().rule,
            "limit_has_price"
        );
        o.kind = OrderKind::Market;
        validate_order(&o, &instrument()).unwrap();
        o.price = Some(Price(10_000_000_000));
        assert_eq!(
            validate_order(&o, &instrument()).unwrap_err().rule,
            "market_has_no_price"
        );
    }

    #[test]
    fn filled_within_quantity_and_status_agrees() {
        let mut o = order();
        o.filled_quantity = Quantity(2_000_000_000);
        assert_eq!(
            validate_order(&o, &instrument()).unwrap_err().rule,
            "filled_within_quantity"
        );
        o.filled_quantity = Quantity(100_000_000);
        assert_eq!(
            validate_order(&o, &instrument()).unwrap_err().rule,
            "status_matches_fill"
        );
        o.status = OrderStatus::PartiallyFilled;
        validate_order(&o, &instrument()).unwrap();
        o.status = OrderStatus::Filled;
        assert_eq!(
            validate_order(&o, &instrument()).unwrap_err().rule,
            "status_matches_fill"
        );
    }

    #[test]
    fn status_machine() {
        use OrderStatus::*;
        for (from, to, ok) in [
            (New, PartiallyFilled, true),
            (New, Filled, true),
            (New, Cancelled, true),
            (New, Rejected, true),
            (PartiallyFilled, Filled, true),
            (PartiallyFilled, Cancelled, true),
            (PartiallyFilled, New, false),
            (PartiallyFilled, Rejected, false),
            (Filled, Cancelled, false),
            (Filled, PartiallyFilled, false),
            (Cancelled, New, false),
            (Rejected, Filled, false),
            (Cancelled, Cancelled, false),
        ] {
            assert_eq!(check_transition(1, from, to).is_ok(), ok, "{from} -> {to}");
        }
    }

    #[test]
    fn order_update_keeps_identity() {
        let old = order();
        let mut new = old.clone();
        new.account = 6;
        assert_eq!(
            validate_order_update(&old, &new).unwrap_err().rule,
            "order_immutable_fields"
        );
        let mut cancelled = old.clone();
        cancelled.status = OrderStatus::Cancelled;
        validate_order_update(&old, &cancelled).unwrap();
        let mut revived = cancelled.clone();
        revived.status = OrderStatus::New;
        assert_eq!(
            validate_order_update(&cancelled, &revived)
                .unwrap_err()
                .rule,
            "status_transition"
        );
    }

    #[test]
    fn fill_rules() {
        let (o, i) = (order(), instrument());
        validate_fill(&fill(500_000_000), &o, &i).unwrap();
        assert_eq!(
            validate_fill(&fill(1_100_000_000), &o, &i)
                .unwrap_err()
                .rule,
            "no_overfill"
        );
        assert_eq!(
            validate_fill(&fill(0), &o, &i).unwrap_err().rule,
            "quantity_positive"
        );
        let mut t = fill(100_000_000);
        t.account = 9;
        assert_eq!(
            validate_fill(&t, &o, &i).unwrap_err().rule,
            "fill_matches_order"
        );
        let mut t = fill(100_000_000);
        t.side = Side::Sell;
        assert_eq!(
            validate_fill(&t, &o, &i).unwrap_err().rule,
            "fill_matches_order"
        );
        let mut t = fill(100_000_000);
        t.price = Price(10_100_000_000);
        assert_eq!(
            validate_fill(&t, &o, &i).unwrap_err().rule,
            "fill_within_limit"
        );
        let mut done = o.clone();
        done.status = OrderStatus::Cancelled;
        assert_eq!(
            validate_fill(&fill(100_000_000), &done, &i)
                .unwrap_err()
                .rule,
            "fill_open_order"
        );
    }

    #[test]
    fn order_after_fill_moves_status() {
        let o = order();
        let half = order_after_fill(&o, &fill(500_000_000));
        assert_eq!(half.status, OrderStatus::PartiallyFilled);
        assert_eq!(half.updated_ts, 200);
        let full = order_after_fill(&half, &fill(500_000_000));
        assert_eq!(full.status, OrderStatus::Filled);
        assert_eq!(full.filled_quantity, full.quantity);
        validate_order(&full, &instrument()).unwrap();
    }

    #[test]
    fn instrument_and_account_rules() {
        let mut i = instrument();
        i.symbol = String::new();
        assert_eq!(validate_instrument(&i).unwrap_err().rule, "symbol_format");
        let mut i = instrument();
        i.tick_size = Price(0);
        assert_eq!(
            validate_instrument(&i).unwrap_err().rule,
            "tick_size_positive"
        );
        let a = Account {
            id: 1,
            name: String::new(),
            status: AccountStatus::Active,
        };
        assert!(validate_account(&a).is_err());
    }
}
