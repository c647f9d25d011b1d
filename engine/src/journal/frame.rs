//! The on-disk format of journal segments, byte by byte.
//!
//! A journal is a folder of segment files. A segment is named `{first_seq:020}.wal`: the
//! sequence number of its first record, zero-padded to 20 decimal digits so that names sort
//! in seq order. A segment is created at its full size by *writing* zeros (never `set_len`:
//! a sparse file makes every fdatasync write metadata too), synced, and the folder synced.
//!
//! A segment holds frames, back to back from offset 0:
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 4 | `len` | payload length, u32 little-endian, 1 ..= 64 MiB |
//! | 4 | 4 | `crc` | CRC-32C (Castagnoli) of bytes 8 .. 16 + `len` (`seq` then payload), u32 LE |
//! | 8 | 8 | `seq` | the record's sequence number, u64 little-endian |
//! | 16 | `len` | payload | the record, opaque to the journal |
//!
//! The next frame starts at 16 + `len`. A `len` word of zero (the preallocated zeros),
//! or the end of the file, ends the written data; every byte after it is zero.
//!
//! Sequence numbers are consecutive: within a segment each frame's seq is the previous
//! one's plus one, the first frame's seq equals the number in the file name, and each
//! segment's name is the previous segment's last seq plus one. A group of records is one
//! write; a group that does not fit the rest of the active segment starts a new segment of
//! `max(segment_bytes, group bytes)`, so a frame never spans two segments.

/// Bytes before the payload: `len`, `crc`, `seq`.
pub(crate) const HEADER_LEN: usize = 16;

/// The largest payload a record may have: 64 MiB.
pub const MAX_PAYLOAD: usize = 64 << 20;

/// The smallest frame there is: a header and a one-byte payload.
pub(crate) const MIN_FRAME: usize = HEADER_LEN + 1;

/// CRC-32C over `seq` (little-endian) and then the payload.
pub(crate) fn checksum(seq: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&seq.to_le_bytes()), payload)
}

/// Appends one frame to `buf`. The caller has checked `1 ..= MAX_PAYLOAD`.
pub(crate) fn encode(buf: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    debug_assert!(!payload.is_empty() && payload.len() <= MAX_PAYLOAD);
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&checksum(seq, payload).to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// What lies at an offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// A zero `len` word, or fewer than four bytes left that are all zero: no more data
    /// (the caller checks that the rest is zero).
    End,
    /// A frame whose checksum holds; the next frame starts at `next`.
    Frame {
        seq: u64,
        payload: &'a [u8],
        next: usize,
    },
    /// Bytes that are not a frame, and why.
    Invalid(String),
    /// A frame that cannot fit: its length is over the maximum, or the file ends inside it.
    /// A torn write never makes one: a segment is preallocated and synced before any record
    /// is written to it, and a group that fits is written whole inside it, so the length a
    /// write put down always fits (an unwritten length reads as zero, the end marker).
    Overrun(String),
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// Decodes the frame at `offset` of a segment's bytes.
pub(crate) fn decode(bytes: &[u8], offset: usize) -> Decoded<'_> {
    let rest = bytes.get(offset..).unwrap_or_default();
    let Some(len) = u32_at(bytes, offset) else {
        return if rest.iter().all(|b| *b == 0) {
            Decoded::End
        } else {
            Decoded::Overrun(format!(
                "{} stray bytes at the end of the segment",
                rest.len()
            ))
        };
    };
    if len == 0 {
        return Decoded::End;
    }
    let (Some(stored_crc), Some(seq)) = (u32_at(bytes, offset + 4), u64_at(bytes, offset + 8))
    else {
        return Decoded::Overrun("frame header runs past the end of the segment".into());
    };
    let len = len as usize;
    if len > MAX_PAYLOAD {
        return Decoded::Overrun(format!(
            "frame length {len} is over the maximum {MAX_PAYLOAD}"
        ));
    }
    let start = offset + HEADER_LEN;
    let Some(payload) = bytes.get(start..start + len) else {
        return Decoded::Overrun(format!(
            "frame of {len} bytes runs past the end of the segment ({} bytes)",
            bytes.len()
        ));
    };
    if checksum(seq, payload) != stored_crc {
        return Decoded::Invalid(format!("frame checksum mismatch (length {len})"));
    }
    Decoded::Frame {
        seq,
        payload,
        next: start + len,
    }
}

/// Looks at every byte offset after `damaged` (the first bad frame, which should have held
/// `expected`) for a frame whose checksum holds and whose seq is later than `expected`.
/// Finding one means the bad frame is damage before the tail, not a torn write.
///
/// A frame with seq `expected + k` can only start at or after `damaged + k * MIN_FRAME`
/// (the `k` frames before it take at least that much), which filters out almost every
/// misaligned offset before the checksum is computed; without it a segment of random
/// payload bytes could cost a checksum over megabytes at each offset. Bytes crafted to pass
/// that filter at every offset still could, so the checksums computed are bounded by
/// [`LATER_FRAME_BUDGET`] times the bytes searched: past it, `Err(offset)` says the search
/// gave up there without an answer.
pub(crate) fn find_later_frame(
    bytes: &[u8],
    damaged: usize,
    expected: u64,
) -> Result<Option<(usize, u64)>, usize> {
    let mut budget = bytes
        .len()
        .saturating_sub(damaged)
        .saturating_mul(LATER_FRAME_BUDGET)
        .max(1 << 20);
    let mut at = damaged + 1;
    while at + HEADER_LEN < bytes.len() {
        let here = at;
        at += 1;
        if u32_at(bytes, here).is_none_or(|len| len == 0) {
            continue;
        }
        let Some(seq) = u64_at(bytes, here + 8) else {
            break;
        };
        let k = seq.wrapping_sub(expected);
        let room = ((here - damaged) / MIN_FRAME) as u64;
        if seq <= expected || k > room {
            continue;
        }
        // The checksum runs over the payload only when the frame fits in the file.
        let cost = u32_at(bytes, here)
            .map(|len| len as usize)
            .filter(|len| *len <= MAX_PAYLOAD && here + HEADER_LEN + len <= bytes.len())
            .unwrap_or(0);
        if cost > budget {
            return Err(here);
        }
        budget -= cost;
        if let Decoded::Frame { seq, .. } = decode(bytes, here) {
            return Ok(Some((here, seq)));
        }
    }
    Ok(None)
}

/// [`find_later_frame`] checksums at most this many times the bytes it searches.
const LATER_FRAME_BUDGET: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut buf = Vec::new();
        for (seq, p) in records {
            encode(&mut buf, *seq, p);
        }
        buf
    }

    #[test]
    fn layout_is_len_crc_seq_payload_little_endian() {
        let buf = frames(&[(0x0102_0304_0506_0708, b"abc")]);
        assert_eq!(buf.len(), HEADER_LEN + 3);
        assert_eq!(&buf[0..4], &[3, 0, 0, 0]);
        let mut covered = 0x0102_0304_0506_0708u64.to_le_bytes().to_vec();
        covered.extend_from_slice(b"abc");
        assert_eq!(&buf[4..8], &crc32c::crc32c(&covered).to_le_bytes());
        assert_eq!(&buf[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&buf[16..], b"abc");
    }

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn decodes_frames_then_end() {
        let mut buf = frames(&[(7, b"one"), (8, b"two!")]);
        buf.extend_from_slice(&[0; 40]);
        let Decoded::Frame { seq, payload, next } = decode(&buf, 0) else {
            panic!("no frame at 0");
        };
        assert_eq!((seq, payload, next), (7, &b"one"[..], 19));
        let Decoded::Frame { seq, payload, next } = decode(&buf, next) else {
            panic!("no frame at 19");
        };
        assert_eq!((seq, payload), (8, &b"two!"[..]));
        assert_eq!(decode(&buf, next), Decoded::End);
        // The end of the file ends the data too, and so do 1..3 zero bytes.
        assert_eq!(decode(&buf[..next], next), Decoded::End);
        assert_eq!(decode(&buf[..next + 3], next), Decoded::End);
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let buf = frames(&[(42, b"payload bytes")]);
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[i] ^= 1 << bit;
                match decode(&bad, 0) {
                    Decoded::Invalid(_) | Decoded::Overrun(_) | Decoded::End => {}
                    Decoded::Frame { seq, .. } => {
                        panic!("flip of byte {i} bit {bit} decoded as seq {seq}")
                    }
                }
            }
        }
    }

    #[test]
    fn truncated_frames_are_invalid() {
        let buf = frames(&[(1, b"hello")]);
        for cut in 1..buf.len() {
            assert!(
                matches!(decode(&buf[..cut], 0), Decoded::Overrun(_)),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn oversized_length_is_invalid() {
        let mut buf = frames(&[(1, b"x")]);
        buf[0..4].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
        assert!(matches!(decode(&buf, 0), Decoded::Overrun(m) if m.contains("maximum")));
    }

    #[test]
    fn later_frame_is_found_after_damage_but_not_after_a_tear() {
        let recs: Vec<(u64, Vec<u8>)> = (10..20).map(|s| (s, vec![s as u8; 30])).collect();
        let refs: Vec<(u64, &[u8])> = recs.iter().map(|(s, p)| (*s, p.as_slice())).collect();
        let mut buf = frames(&refs);
        let whole = buf.len();
        buf.extend_from_slice(&[0; 100]);
        // Damage in frame 12: frame 13 follows.
        let third = 2 * (HEADER_LEN + 30);
        let mut damaged = buf.clone();
        damaged[third + 20] ^= 0xFF;
        assert_eq!(
            find_later_frame(&damaged, third, 12),
            Ok(Some((third + (HEADER_LEN + 30), 13)))
        );
        // A tear in the last frame: nothing later.
        let last = whole - (HEADER_LEN + 30);
        let mut torn = buf.clone();
        torn[last + 20..whole].fill(0);
        assert_eq!(find_later_frame(&torn, last, 19), Ok(None));
        // Earlier seqs after the offset do not count.
        assert_eq!(find_later_frame(&buf, 0, 100), Ok(None));
    }

    #[test]
    fn headers_crafted_at_every_offset_exhaust_the_search_instead_of_taking_quadratic_time() {
        // After a damaged frame (seq 1 expected), a plausible header every MIN_FRAME bytes,
        // each claiming a payload of the rest of the file, none with a valid checksum.
        let size = 4 << 20;
        let mut bytes = vec![0u8; size];
        let mut at = 0;
        let mut k = 0u64;
        while at + HEADER_LEN < size {
            let len = u32::try_from(size - at - HEADER_LEN).unwrap_or(u32::MAX);
            bytes[at..at + 4].copy_from_slice(&len.to_le_bytes());
            bytes[at + 4..at + 8].copy_from_slice(&0xdead_beef_u32.to_le_bytes());
            bytes[at + 8..at + 16].copy_from_slice(&(1 + k).to_le_bytes());
            at += MIN_FRAME;
            k += 1;
        }
        let Err(gave_up) = find_later_frame(&bytes, 0, 1) else {
            panic!("searched every crafted header");
        };
        assert!(gave_up > 0 && gave_up < size);
    }
}
