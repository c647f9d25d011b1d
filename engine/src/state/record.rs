//! The body of a journal record (the frame's payload; the frame itself is laid out in
//! `journal/frame.rs`): one committed transaction's row changes, with the time its group was
//! written.
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 1 | `tag` | `0x00` |
//! | 1 | 8 | `time` | when the transaction's group was written to the journal: ns since the Unix epoch, u64 little-endian; never less than an earlier record's |
//! | 9 | rest | `changes` | the row changes, a postcard `Vec` of (table u8, key bytes, `Option` of record bytes) |
//!
//! Records written before commit times were kept have no tag and no time: the body is the
//! postcard `Vec` alone. Its first byte is the varint of the vector's length, which is never
//! `0x00` for a vector that holds a change; a record of no changes is the single byte
//! `0x00`. So a body of more than one byte that starts with `0x00` has a time, any other has
//! none, and both kinds replay.

use super::apply::RowChange;
use crate::error::{Error, Result};

/// The tag byte of a record with a commit time.
const TIMED: u8 = 0x00;

/// Bytes before the row changes in a record with a commit time.
pub(crate) const HEADER_LEN: usize = 9;

/// A record's body with its time left at zero (see [`stamp`]) and room for `changes_len`
/// more bytes, which the caller appends.
pub(crate) fn start(changes_len: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(HEADER_LEN + changes_len);
    body.push(TIMED);
    body.extend_from_slice(&[0; 8]);
    body
}

/// Writes the commit time into a body made by [`start`].
pub(crate) fn stamp(body: &mut [u8], time_ns: u64) {
    if let Some(slot) = body.get_mut(1..HEADER_LEN) {
        slot.copy_from_slice(&time_ns.to_le_bytes());
    }
}

/// The commit time of a record's body, if it has one.
pub(crate) fn time_of(body: &[u8]) -> Option<u64> {
    if body.len() <= 1 || body[0] != TIMED {
        return None;
    }
    let b: [u8; 8] = body.get(1..HEADER_LEN)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// A record's commit time (if it has one) and row changes. `seq` names it in errors.
pub(crate) fn decode(seq: u64, body: &[u8]) -> Result<(Option<u64>, Vec<RowChange>)> {
    let undecodable =
        |why: String| Error::corruption(format!("journal record {seq} does not decode: {why}"));
    let (time, changes) = match time_of(body) {
        Some(t) => (Some(t), &body[HEADER_LEN..]),
        None if body.len() > 1 && body[0] == TIMED => {
            return Err(undecodable("its commit time is cut short".into()));
        }
        None => (None, body),
    };
    let changes = postcard::from_bytes(changes).map_err(|e| undecodable(e.to_string()))?;
    Ok((time, changes))
}

/// A record body committed at `ns`, of no row changes: what tests of the journal's
/// readers write.
#[cfg(test)]
pub(crate) fn timed_empty(ns: u64) -> Vec<u8> {
    let mut body = start(1);
    stamp(&mut body, ns);
    // The postcard encoding of an empty vector.
    body.push(0);
    body
}

#[cfg(test)]
mod tests {

    use super::*;

    fn changes() -> Vec<RowChange> {
        crate::state::apply::sample_changes()
    }

    #[test]
    fn a_timed_record_decodes_to_its_time_and_changes() -> Result<()> {
        let mut body =
            postcard::to_extend(&changes(), start(0)).map_err(|e| Error::invalid(e.to_string()))?;
        assert_eq!(time_of(&body), Some(0));
        stamp(&mut body, 1_764_000_000_123_456_789);
        assert_eq!(time_of(&body), Some(1_764_000_000_123_456_789));
        assert_eq!(
            decode(5, &body)?,
            (Some(1_764_000_000_123_456_789), changes())
        );
        Ok(())
    }

    #[test]
    fn records_without_a_time_still_decode() -> Result<()> {
        let untimed =
            postcard::to_allocvec(&changes()).map_err(|e| Error::invalid(e.to_string()))?;
        assert_ne!(untimed[0], TIMED);
        assert_eq!(time_of(&untimed), None);
        assert_eq!(decode(1, &untimed)?, (None, changes()));
        // A record of no changes is the one untimed body that starts with the tag byte.
        let empty = postcard::to_allocvec(&Vec::<RowChange>::new())
            .map_err(|e| Error::invalid(e.to_string()))?;
        assert_eq!(empty, [TIMED]);
        assert_eq!(decode(2, &empty)?, (None, Vec::new()));
        // 128 changes: the length's varint is 0x80 0x01, not the tag either.
        let many = vec![changes()[1].clone(); 128];
        let bytes = postcard::to_allocvec(&many).map_err(|e| Error::invalid(e.to_string()))?;
        assert_eq!(decode(3, &bytes)?, (None, many));
        Ok(())
    }

    #[test]
    fn a_cut_or_damaged_body_is_corruption_not_a_panic() {
        let body = postcard::to_extend(&changes(), start(0)).expect("encode");
        for cut in 2..body.len() {
            let e = decode(9, &body[..cut]).expect_err("a cut body");
            assert!(e.to_string().contains("journal record 9"), "{e}");
        }
    }
}
