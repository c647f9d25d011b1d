//! A price-time priority limit order book for one instrument.
//!
//! Matching is split in two so that the store stays the source of truth: [`Book::plan`]
//! works out the fills an incoming order would make without changing the book; the engine
//! writes the order and its fills in one transaction; only after that commit succeeds does
//! [`Book::apply`] change the book. A failed commit leaves the book as it was.

use std::collections::{BTreeMap, HashMap, VecDeque};

use tradestore::schema::{Price, Quantity, Side};

/// An order resting in the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resting {
    /// The order's id in the store.
    pub id: u64,
    /// Its account.
    pub account: u64,
    /// Its side.
    pub side: Side,
    /// Its limit price.
    pub price: Price,
    /// Quantity still open.
    pub open: Quantity,
}

/// One match of the incoming order against a resting one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// The resting order.
    pub resting: Resting,
    /// Executed quantity.
    pub quantity: Quantity,
    /// Execution price (the resting order's price).
    pub price: Price,
}

/// Bids and asks by price level, each level first in, first out.
#[derive(Debug, Default)]
pub struct Book {
    bids: BTreeMap<Price, VecDeque<u64>>,
    asks: BTreeMap<Price, VecDeque<u64>>,
    orders: HashMap<u64, Resting>,
}

impl Book {
    /// The fills an incoming order would make: against the best opposite prices first, and
    /// within a price in arrival order, while its limit (if any) allows.
    pub fn plan(&self, side: Side, limit: Option<Price>, quantity: Quantity) -> Vec<Match> {
        let mut left = quantity.0;
        let mut out = Vec::new();
        let levels: Box<dyn Iterator<Item = (&Price, &VecDeque<u64>)>> = match side {
            Side::Buy => Box::new(self.asks.iter()),
            Side::Sell => Box::new(self.bids.iter().rev()),
        };
        'levels: for (&price, queue) in levels {
            let crosses = match (side, limit) {
                (_, None) => true,
                (Side::Buy, Some(l)) => price <= l,
                (Side::Sell, Some(l)) => price >= l,
            };
            if !crosses {
                break;
            }
            for id in queue {
                let Some(r) = self.orders.get(id) else {
                    continue;
                };
                let q = left.min(r.open.0);
                out.push(Match {
                    resting: *r,
                    quantity: Quantity(q),
                    price,
                });
                left -= q;
                if left == 0 {
                    break 'levels;
                }
            }
        }
        out
    }

    /// Applies committed matches, and rests what is left of the incoming order (if it is
    /// a limit order that may rest).
    pub fn apply(&mut self, matches: &[Match], rest: Option<Resting>) {
        for m in matches {
            let id = m.resting.id;
            let done = match self.orders.get_mut(&id) {
                Some(r) => {
                    r.open = Quantity(r.open.0 - m.quantity.0);
                    r.open.0 <= 0
                }
                None => false,
            };
            if done {
                self.remove(id);
            }
        }
        if let Some(r) = rest.filter(|r| r.open.0 > 0) {
            self.insert(r);
        }
    }

    /// Puts an order in the book (used when loading open orders from the store).
    pub fn insert(&mut self, r: Resting) {
        let side = match r.side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        side.entry(r.price).or_default().push_back(r.id);
        self.orders.insert(r.id, r);
    }

    /// Takes an order out of the book, returning it.
    pub fn remove(&mut self, id: u64) -> Option<Resting> {
        let r = self.orders.remove(&id)?;
        let side = match r.side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        if let Some(q) = side.get_mut(&r.price) {
            q.retain(|x| *x != id);
            if q.is_empty() {
                side.remove(&r.price);
            }
        }
        Some(r)
    }

    /// A resting order by id.
    #[cfg(test)]
    pub fn get(&self, id: u64) -> Option<&Resting> {
        self.orders.get(&id)
    }

    /// Number of resting orders.
    pub fn len(&self) -> usize {
        self.orders.len()
    }

    /// The ids of resting orders (for picking one to cancel).
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.orders.keys().copied()
    }

    /// Best bid and best ask.
    #[cfg(test)]
    pub fn top(&self) -> (Option<Price>, Option<Price>) {
        (
            self.bids.keys().next_back().copied(),
            self.asks.keys().next().copied(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: u64, side: Side, price: i64, open: i64) -> Resting {
        Resting {
            id,
            account: id,
            side,
            price: Price(price),
            open: Quantity(open),
        }
    }

    #[test]
    fn price_then_time_priority() {
        let mut b = Book::default();
        b.insert(r(1, Side::Sell, 101, 5));
        b.insert(r(2, Side::Sell, 100, 5));
        b.insert(r(3, Side::Sell, 100, 5));
        let m = b.plan(Side::Buy, Some(Price(101)), Quantity(12));
        let got: Vec<(u64, i64, i64)> = m
            .iter()
            .map(|m| (m.resting.id, m.price.0, m.quantity.0))
            .collect();
        assert_eq!(got, vec![(2, 100, 5), (3, 100, 5), (1, 101, 2)]);
        b.apply(&m, None);
        assert_eq!(b.len(), 1);
        assert_eq!(b.get(1).map(|r| r.open), Some(Quantity(3)));
    }

    #[test]
    fn limit_stops_matching_and_rest_goes_in_book() {
        let mut b = Book::default();
        b.insert(r(1, Side::Buy, 99, 5));
        let m = b.plan(Side::Sell, Some(Price(100)), Quantity(4));
        assert!(m.is_empty());
        b.apply(&m, Some(r(2, Side::Sell, 100, 4)));
        assert_eq!(b.top(), (Some(Price(99)), Some(Price(100))));
        let m = b.plan(Side::Sell, None, Quantity(10));
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].quantity, Quantity(5));
    }

    #[test]
    fn remove_cleans_level() {
        let mut b = Book::default();
        b.insert(r(1, Side::Buy, 99, 5));
        assert!(b.remove(1).is_some());
        assert_eq!(b.top(), (None, None));
        assert!(b.remove(1).is_none());
    }
}
