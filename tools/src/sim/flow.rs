//! The seeded order-flow generator: what a population of accounts sends to the market.
//!
//! Per writer it draws, from its own seeded generator: a cancel of a resting order about
//! one time in ten, otherwise a new order. Instruments are skewed: the first tenth of each
//! writer's instruments (at least one) are "hot" and get half of the flow. Orders are 85%
//! limit (good-till-cancelled, day, immediate-or-cancel, fill-or-kill) priced a few ticks
//! around a random-walking mid price, so that about a third cross the spread, and 15%
//! market orders; quantities are 1 to 20 lots.

use tradestore::schema::{OrderKind, Price, Quantity, Side, TimeInForce};

/// Price tick of every simulated instrument (0.01).
pub const TICK: Price = Price(1_000_000);
/// Lot of every simulated instrument (1 unit).
pub const LOT: Quantity = Quantity(100_000_000);

/// One action of the flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A new order.
    New(NewOrder),
    /// Cancel the resting order at this position (modulo the book's size) of this instrument.
    Cancel { instrument: u64, pick: usize },
}

/// A new order as the flow generates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOrder {
    /// Sending account.
    pub account: u64,
    /// Instrument.
    pub instrument: u64,
    /// Side.
    pub side: Side,
    /// Limit or market.
    pub kind: OrderKind,
    /// Time in force.
    pub tif: TimeInForce,
    /// Limit price.
    pub price: Option<Price>,
    /// Quantity.
    pub quantity: Quantity,
}

/// The generator of one writer.
pub struct Flow {
    rng: fastrand::Rng,
    instruments: Vec<u64>,
    hot: usize,
    accounts: u64,
    mids: Vec<i64>,
}

impl Flow {
    /// A generator over `instruments` (at least one) and accounts `1..=accounts`.
    pub fn new(seed: u64, instruments: Vec<u64>, accounts: u64) -> Flow {
        let hot = (instruments.len() / 10).max(1);
        let mids = instruments
            .iter()
            .map(|i| 10_000 + (*i as i64 % 50) * 100)
            .collect();
        Flow {
            rng: fastrand::Rng::with_seed(seed),
            instruments,
            hot,
            accounts: accounts.max(1),
            mids,
        }
    }

    /// The instruments this generator sends orders for.
    pub fn instruments(&self) -> &[u64] {
        &self.instruments
    }

    /// The next action.
    pub fn next(&mut self) -> Action {
        let slot = if self.rng.bool() {
            self.rng.usize(..self.hot)
        } else {
            self.rng.usize(..self.instruments.len())
        };
        let instrument = self.instruments[slot];
        if self.rng.u8(..10) == 0 {
            return Action::Cancel {
                instrument,
                pick: self.rng.usize(..),
            };
        }
        // The mid walks one tick at a time, never below 10 ticks.
        match self.rng.u8(..8) {
            0 => self.mids[slot] += 1,
            1 => self.mids[slot] = (self.mids[slot] - 1).max(10),
            _ => {}
        }
        let mid = self.mids[slot];
        let side = if self.rng.bool() {
            Side::Buy
        } else {
            Side::Sell
        };
        let quantity = Quantity(LOT.0 * self.rng.i64(1..=20));
        let account = self.rng.u64(1..=self.accounts);
        if self.rng.u8(..100) < 15 {
            return Action::New(NewOrder {
                account,
                instrument,
                side,
                kind: OrderKind::Market,
                tif: TimeInForce::Ioc,
                price: None,
                quantity,
            });
        }
        // Offsets -4..=3 ticks towards the other side: about a third cross the spread.
        let offset = self.rng.i64(-4..=3);
        let ticks = match side {
            Side::Buy => mid + offset,
            Side::Sell => mid - offset,
        };
        let tif = match self.rng.u8(..20) {
            0..=13 => TimeInForce::Gtc,
            14..=15 => TimeInForce::Day,
            16..=18 => TimeInForce::Ioc,
            _ => TimeInForce::Fok,
        };
        Action::New(NewOrder {
            account,
            instrument,
            side,
            kind: OrderKind::Limit,
            tif,
            price: Some(Price(TICK.0 * ticks.max(1))),
            quantity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_flow() {
        let mut a = Flow::new(7, vec![1, 2, 3], 10);
        let mut b = Flow::new(7, vec![1, 2, 3], 10);
        for _ in 0..1000 {
            assert_eq!(a.next(), b.next());
        }
    }

    #[test]
    fn orders_are_valid_shapes() {
        let mut f = Flow::new(1, (1..=20).collect(), 50);
        let (mut market, mut limit, mut cancels) = (0, 0, 0);
        for _ in 0..5000 {
            match f.next() {
                Action::New(o) => {
                    assert!((1..=50).contains(&o.account));
                    assert!(o.quantity.0 > 0 && o.quantity.0 % LOT.0 == 0);
                    match o.kind {
                        OrderKind::Market => {
                            market += 1;
                            assert!(o.price.is_none());
                        }
                        OrderKind::Limit => {
                            limit += 1;
                            let p = o.price.unwrap();
                            assert!(p.0 > 0 && p.0 % TICK.0 == 0);
                        }
                    }
                }
                Action::Cancel { .. } => cancels += 1,
            }
        }
        assert!(
            market > 400 && limit > 3000 && cancels > 300,
            "{market} {limit} {cancels}"
        );
    }
}
