//! What one committed transaction wrote, kept for validating the commits that follow it.
//!
//! A committing transaction is checked against every transaction committed since its
//! snapshot: with many committers, that is every key of a hundred transactions or more,
//! under the commit lock. So each one's keys are packed into one buffer (one allocation
//! instead of one per key) behind a 512-bit filter holding two bits per key. A read key
//! whose two bits are not both set was not written, which answers almost every check with
//! two word tests; a read key whose bits are set, or a scanned range, is checked against
//! the packed keys themselves. The filter has no false negatives: every written key's bits
//! are set.

use std::hash::BuildHasher;

use crate::state::OKey;
use crate::txn::ReadSet;

/// Bits of the filter.
const BITS: u64 = 512;
/// Words of the filter.
const WORDS: usize = (BITS / 64) as usize;

/// One key's two bits: (word, mask) each.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe([(usize, u64); 2]);

impl Probe {
    /// The bits of the key `key` of `space`.
    pub(crate) fn of(space: u16, key: &[u8]) -> Probe {
        // Fixed seed: the filter only decides which checks are exact, never their outcome.
        let h = foldhash::fast::FixedState::with_seed(0x7261_6465_7374_6f72).hash_one((space, key));
        let bit = |b: u64| ((b / 64) as usize, 1u64 << (b % 64));
        Probe([bit(h % BITS), bit((h >> 32) % BITS)])
    }
}

/// The probes of a read set's point reads (computed once per commit, before its lock).
pub(crate) fn probes(reads: &ReadSet) -> Vec<Probe> {
    reads
        .points
        .keys()
        .map(|(space, key)| Probe::of(*space, key))
        .collect()
}

/// The keys one transaction wrote.
#[derive(Debug)]
pub(crate) struct Written {
    filter: [u64; WORDS],
    /// Each key as: space (2 bytes, little-endian), length (4 bytes, little-endian), bytes.
    packed: Box<[u8]>,
}

impl Written {
    /// Packs `keys`.
    pub(crate) fn of<'k>(keys: impl Iterator<Item = &'k OKey> + Clone) -> Written {
        let size: usize = keys.clone().map(|(_, k)| k.len() + 6).sum();
        let mut packed = Vec::with_capacity(size);
        let mut filter = [0u64; WORDS];
        for (space, key) in keys {
            for (word, mask) in Probe::of(*space, key).0 {
                filter[word] |= mask;
            }
            packed.extend_from_slice(&space.to_le_bytes());
            // A key longer than 4 GiB cannot be committed (values are bounded far below).
            packed.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
            packed.extend_from_slice(key);
        }
        Written {
            filter,
            packed: packed.into_boxed_slice(),
        }
    }

    /// The written keys, in the order given to [`Written::of`].
    pub(crate) fn keys(&self) -> impl Iterator<Item = (u16, &[u8])> {
        let mut rest: &[u8] = &self.packed;
        std::iter::from_fn(move || {
            let (head, tail) = rest.split_at_checked(6)?;
            let space = u16::from_le_bytes([head[0], head[1]]);
            let len = u32::from_le_bytes([head[2], head[3], head[4], head[5]]) as usize;
            let (key, tail) = tail.split_at_checked(len)?;
            rest = tail;
            Some((space, key))
        })
    }

    /// Whether the filter may hold the key of `probe`.
    fn may_hold(&self, probe: &Probe) -> bool {
        probe
            .0
            .iter()
            .all(|(word, mask)| self.filter[*word] & mask != 0)
    }

    /// A written key that changes what `reads` read (`probes` are its points' probes), if
    /// any.
    pub(crate) fn conflict(&self, reads: &ReadSet, probes: &[Probe]) -> Option<OKey> {
        let points = probes.iter().any(|p| self.may_hold(p));
        if !points && reads.ranges.is_empty() {
            return None;
        }
        // Ranges compare borrowed bytes; a point lookup needs an owned key, made only when
        // the filter says a read point may be among these keys.
        self.keys()
            .find(|&(space, key)| {
                reads.scanned(space, key)
                    || (points && reads.points.contains_key(&(space, key.to_vec())))
            })
            .map(|(space, key)| (space, key.to_vec()))
    }

    /// Bytes held (for the tests' accounting).
    #[cfg(test)]
    fn packed_len(&self) -> usize {
        self.packed.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ops::Bound;

    use super::*;

    fn okey(space: u16, key: &[u8]) -> OKey {
        (space, key.to_vec())
    }

    fn reads(points: &[OKey], ranges: Vec<crate::txn::ScannedRange>) -> ReadSet {
        ReadSet {
            points: points.iter().map(|k| (k.clone(), None)).collect(),
            ranges,
        }
    }

    #[test]
    fn keys_come_back_in_order() {
        let keys = [okey(3, b"abc"), okey(0, b""), okey(65535, &[7; 300])];
        let w = Written::of(keys.iter());
        let back: Vec<OKey> = w.keys().map(|(s, k)| (s, k.to_vec())).collect();
        assert_eq!(back, keys);
        assert_eq!(w.packed_len(), 3 + 300 + 3 * 6);
        assert_eq!(Written::of([].iter()).keys().count(), 0);
    }

    #[test]
    fn a_written_point_is_always_found() {
        // Many keys: the filter fills up, and no written key may ever be missed.
        let keys: Vec<OKey> = (0..2000u32)
            .map(|i| okey((i % 9) as u16, &i.to_be_bytes()))
            .collect();
        let w = Written::of(keys.iter());
        for k in &keys {
            let r = reads(std::slice::from_ref(k), Vec::new());
            assert_eq!(w.conflict(&r, &probes(&r)), Some(k.clone()));
        }
    }

    #[test]
    fn unwritten_points_do_not_conflict() {
        let written: Vec<OKey> = (0..12u32).map(|i| okey(1, &i.to_be_bytes())).collect();
        let w = Written::of(written.iter());
        // Same bytes in another space, and other keys in the same space.
        let mut other: Vec<OKey> = (0..12u32).map(|i| okey(2, &i.to_be_bytes())).collect();
        other.extend((100..400u32).map(|i| okey(1, &i.to_be_bytes())));
        let r = reads(&other, Vec::new());
        assert_eq!(w.conflict(&r, &probes(&r)), None);
        // How often the filter alone answered: a 12-key transaction against one-key reads.
        let passed = other
            .iter()
            .filter(|k| !w.may_hold(&Probe::of(k.0, &k.1)))
            .count();
        assert!(
            passed * 10 >= other.len() * 9,
            "{passed} of {}",
            other.len()
        );
    }

    #[test]
    fn a_write_inside_a_scanned_range_conflicts() {
        let w = Written::of([okey(9, b"m")].iter());
        let scanned = |lo: &[u8], hi: &[u8]| {
            reads(
                &[],
                vec![(
                    9,
                    Bound::Included(lo.to_vec()),
                    Bound::Excluded(hi.to_vec()),
                )],
            )
        };
        let inside = scanned(b"a", b"z");
        assert_eq!(w.conflict(&inside, &probes(&inside)), Some(okey(9, b"m")));
        let outside = scanned(b"n", b"z");
        assert_eq!(w.conflict(&outside, &probes(&outside)), None);
        let other_space = ReadSet {
            points: BTreeMap::new(),
            ranges: vec![(8, Bound::Unbounded, Bound::Unbounded)],
        };
        assert_eq!(w.conflict(&other_space, &probes(&other_space)), None);
    }
}
