//! Record encoding: one version byte, then the record in postcard.
//!
//! ```text
//! +---------+----------------------------+
//! | version | postcard(record)           |
//! |  1 byte | varint ints, length-prefixed strings, fields in declaration order
//! +---------+----------------------------+
//! ```
//!
//! postcard's wire format is specified and stable (1.0), compact (varints), and fast. The
//! version byte lets a later release change a record and upgrade old rows on read or in a
//! migration; this build writes [`RECORD_VERSION`] and reads versions `1..=RECORD_VERSION`
//! (version 1 is the only one so far, so no upgrade function exists yet).

use std::fmt;

use crate::records::{AnyRecord, Record};
use crate::table::TableId;

/// The record version this build writes.
pub const RECORD_VERSION: u8 = 1;

/// Bytes that are not a valid record of the expected table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The table whose record was being decoded.
    pub table: TableId,
    /// What was wrong.
    pub reason: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "undecodable {} record: {}", self.table, self.reason)
    }
}

impl std::error::Error for DecodeError {}

/// Encodes a record: the version byte, then postcard.
pub fn encode<R: Record>(record: &R) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(RECORD_VERSION);
    // Serializing these plain structs into a Vec cannot fail: postcard only errors on
    // unsupported types (none here) or a full fixed buffer (a Vec grows).
    match postcard::to_extend(record, out) {
        Ok(v) => v,
        Err(e) => unreachable!("postcard cannot fail on a Vec for {}: {e}", R::TABLE),
    }
}

/// Decodes a record written by [`encode`], checking the version byte and that every byte
/// was consumed.
pub fn decode<R: Record>(bytes: &[u8]) -> Result<R, DecodeError> {
    let err = |reason: String| DecodeError {
        table: R::TABLE,
        reason,
    };
    let (&version, body) = bytes.split_first().ok_or_else(|| err("empty".to_owned()))?;
    if version == 0 || version > RECORD_VERSION {
        return Err(err(format!(
            "record version {version}, this build reads versions 1..={RECORD_VERSION}"
        )));
    }
    if let Some(record) = R::decode_fast(body) {
        return Ok(record);
    }
    let (record, rest) = postcard::take_from_bytes::<R>(body).map_err(|e| err(e.to_string()))?;
    if !rest.is_empty() {
        return Err(err(format!("{} trailing bytes", rest.len())));
    }
    Ok(record)
}

/// Decodes a record of the given table into the table-tagged enum.
pub fn decode_any(table: TableId, bytes: &[u8]) -> Result<AnyRecord, DecodeError> {
    use crate::records::*;
    Ok(match table {
        TableId::Instruments => AnyRecord::Instruments(decode::<Instrument>(bytes)?),
        TableId::Accounts => AnyRecord::Accounts(decode::<Account>(bytes)?),
        TableId::Orders => AnyRecord::Orders(decode::<Order>(bytes)?),
        TableId::Trades => AnyRecord::Trades(decode::<Trade>(bytes)?),
        TableId::Positions => AnyRecord::Positions(decode::<Position>(bytes)?),
        TableId::Cash => AnyRecord::Cash(decode::<Cash>(bytes)?),
    })
}

/// Encodes a record of any table.
pub fn encode_any(record: &AnyRecord) -> Vec<u8> {
    match record {
        AnyRecord::Instruments(r) => encode(r),
        AnyRecord::Accounts(r) => encode(r),
        AnyRecord::Orders(r) => encode(r),
        AnyRecord::Trades(r) => encode(r),
        AnyRecord::Positions(r) => encode(r),
        AnyRecord::Cash(r) => encode(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::*;
    use crate::{Money, Price, Quantity};

    fn trade() -> Trade {
        Trade {
            id: 7,
            order_id: 3,
            account: 1,
            instrument: 2,
            side: Side::Sell,
            price: Price(10_000_000_000),
            quantity: Quantity(300_000_000),
            fee: Money(1_500),
            ts: 1_764_000_000_000_000_000,
        }
    }

    #[test]
    fn every_tables_columns_by_position_are_its_columns_by_name() {
        let records = [
            AnyRecord::Instruments(Instrument {
                id: 1,
                symbol: "ACME".into(),
                tick_size: Price(1),
                lot_size: Quantity(2),
                currency: "USD".into(),
            }),
            AnyRecord::Accounts(Account {
                id: 2,
                name: "a".into(),
                status: AccountStatus::Active,
            }),
            AnyRecord::Positions(Position {
                account: 1,
                instrument: 2,
                quantity: Quantity(3),
                cost_basis: Money(4),
                realized_pnl: Money(5),
                updated_ts: 6,
                last_trade_id: 7,
            }),
            AnyRecord::Cash(Cash {
                account: 1,
                currency: "EUR".into(),
                amount: Money(9),
            }),
            AnyRecord::Orders(Order {
                id: 3,
                account: 1,
                instrument: 2,
                side: Side::Buy,
                kind: OrderKind::Limit,
                time_in_force: TimeInForce::Gtc,
                price: Some(Price(5)),
                quantity: Quantity(6),
                filled_quantity: Quantity(1),
                status: OrderStatus::PartiallyFilled,
                created_ts: 7,
                updated_ts: 8,
            }),
            AnyRecord::Trades(trade()),
        ];
        for r in &records {
            let columns = r.table().columns();
            for (i, c) in columns.iter().enumerate() {
                assert_eq!(r.column_at(i), r.column(c.name), "{} {}", r.table(), c.name);
                assert!(r.column_at(i).is_some(), "{} {}", r.table(), c.name);
            }
            assert_eq!(r.column_at(columns.len()), None);
        }
    }

    #[test]
    fn round_trip() {
        let t = trade();
        let bytes = encode(&t);
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(decode::<Trade>(&bytes).unwrap(), t);
        assert_eq!(
            decode_any(TableId::Trades, &bytes).unwrap(),
            AnyRecord::Trades(t)
        );
    }

    #[test]
    fn rejects_unknown_version_truncation_and_trailing_bytes() {
        let mut bytes = encode(&trade());
        let mut future = bytes.clone();
        future[0] = RECORD_VERSION + 1;
        assert!(
            decode::<Trade>(&future)
                .unwrap_err()
                .reason
                .contains("version")
        );
        assert!(decode::<Trade>(&[]).is_err());
        assert!(decode::<Trade>(&bytes[..bytes.len() - 1]).is_err());
        bytes.push(0);
        assert!(
            decode::<Trade>(&bytes)
                .unwrap_err()
                .reason
                .contains("trailing")
        );
    }

    /// The body decoded by postcard alone, strictly (every byte consumed).
    fn by_postcard<R: Record>(body: &[u8]) -> Option<R> {
        match postcard::take_from_bytes::<R>(body) {
            Ok((t, [])) => Some(t),
            _ => None,
        }
    }

    /// `record`'s body cut, extended and flipped, and `random` bytes: for each, the fast
    /// decoder either declines or agrees with postcard, and `decode` agrees with postcard.
    fn fast_agrees_with_postcard<R: Record>(
        record: &R,
        cut: usize,
        flips: &[(usize, u8)],
        extra: &[u8],
        random: Vec<u8>,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let mut body = encode(record)[1..].to_vec();
        body.truncate(cut.max(1));
        body.extend(extra);
        for (at, x) in flips {
            if let Some(b) = body.get_mut(*at) {
                *b ^= x;
            }
        }
        for candidate in [body, random] {
            let fast = R::decode_fast(&candidate);
            let reference = by_postcard::<R>(&candidate);
            if fast.is_some() {
                proptest::prop_assert_eq!(&fast, &reference);
            }
            let mut framed = vec![RECORD_VERSION];
            framed.extend(&candidate);
            proptest::prop_assert_eq!(decode::<R>(&framed).ok(), reference);
        }
        Ok(())
    }

    fn any_position() -> impl proptest::strategy::Strategy<Value = Position> {
        use proptest::prelude::*;
        (
            (any::<u64>(), any::<u64>(), any::<u64>()),
            (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()),
        )
            .prop_map(|((account, instrument, last), (q, c, r, ts))| Position {
                account,
                instrument,
                quantity: Quantity(q),
                cost_basis: Money(c),
                realized_pnl: Money(r),
                updated_ts: ts,
                last_trade_id: last,
            })
    }

    fn any_trade() -> impl proptest::strategy::Strategy<Value = Trade> {
        use proptest::prelude::*;
        (
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
            any::<bool>(),
            (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()),
        )
            .prop_map(
                |((id, order_id, account, instrument), sell, (p, q, f, ts))| Trade {
                    id,
                    order_id,
                    account,
                    instrument,
                    side: if sell { Side::Sell } else { Side::Buy },
                    price: Price(p),
                    quantity: Quantity(q),
                    fee: Money(f),
                    ts,
                },
            )
    }

    proptest::proptest! {
        /// A trade's columns by position are its columns by name, in the table's order.
        #[test]
        fn trade_columns_by_position_are_its_columns_by_name(t in any_trade()) {
            let columns = TableId::Trades.columns();
            for (i, c) in columns.iter().enumerate() {
                proptest::prop_assert_eq!(t.column_at(i), t.column(c.name));
                proptest::prop_assert!(t.column_at(i).is_some());
            }
            proptest::prop_assert_eq!(t.column_at(columns.len()), None);
            let any = t.clone().into_any();
            proptest::prop_assert_eq!(any.column_at(5), t.column("price"));
        }

        #[test]
        fn the_fast_trade_decoder_reads_what_postcard_wrote(t in any_trade()) {
            let bytes = encode(&t);
            proptest::prop_assert_eq!(Trade::decode_fast(&bytes[1..]), Some(t.clone()));
            proptest::prop_assert_eq!(decode::<Trade>(&bytes).ok(), Some(t));
        }

        /// Whatever the bytes (cut, extended, flipped, random), the fast decoder either
        /// declines or agrees with postcard; `decode` agrees with postcard either way.
        #[test]
        fn the_fast_trade_decoder_never_disagrees_with_postcard(
            t in any_trade(),
            cut in 0usize..80,
            flips in proptest::collection::vec((0usize..80, proptest::prelude::any::<u8>()), 0..4),
            extra in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
            random in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48),
        ) {
            fast_agrees_with_postcard(&t, cut, &flips, &extra, random)?;
        }

        #[test]
        fn the_fast_position_decoder_reads_what_postcard_wrote(p in any_position()) {
            let bytes = encode(&p);
            proptest::prop_assert_eq!(Position::decode_fast(&bytes[1..]), Some(p.clone()));
            proptest::prop_assert_eq!(decode::<Position>(&bytes).ok(), Some(p));
        }

        #[test]
        fn the_fast_position_decoder_never_disagrees_with_postcard(
            p in any_position(),
            cut in 0usize..70,
            flips in proptest::collection::vec((0usize..70, proptest::prelude::any::<u8>()), 0..4),
            extra in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
            random in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        ) {
            fast_agrees_with_postcard(&p, cut, &flips, &extra, random)?;
        }
    }

    #[test]
    fn the_fast_trade_decoder_follows_postcards_varint_limits() {
        let body = encode(&trade())[1..].to_vec();
        // A non-canonical (padded) id that postcard accepts: 7 as two bytes.
        let mut padded = vec![0x87, 0x00];
        padded.extend(&body[1..]);
        assert_eq!(Trade::decode_fast(&padded), by_postcard::<Trade>(&padded));
        assert_eq!(Trade::decode_fast(&padded).map(|t| t.id), Some(7));
        // Ten bytes whose last carries more than the one bit a u64 has left: refused.
        let mut wide = vec![0xff; 9];
        wide.push(0x02);
        wide.extend(&body[1..]);
        assert_eq!(Trade::decode_fast(&wide), None);
        assert_eq!(by_postcard::<Trade>(&wide), None);
        // A side that is neither buy (0) nor sell (1).
        let mut side = body.clone();
        side[4] = 2;
        assert_eq!(Trade::decode_fast(&side), None);
        assert_eq!(by_postcard::<Trade>(&side), None);
    }
}
