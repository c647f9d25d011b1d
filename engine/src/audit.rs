//! The audit trail: a hash-chained record of the changes made to a store outside its trading
//! write path, kept in the store.
//!
//! Every index creation, completion and drop (by an operator, the index manager or a
//! migration), every applied migration, every dump restored into the store and every
//! archive run appends an entry **in the same redb commit as the change itself**: the entry
//! exists exactly when the change does. A prune of the kept journal (files, not rows) is
//! recorded by a durable commit of its own once its files are removed. An application adds its own entries (a kill switch
//! thrown, a limit raised by hand) with [`Store::audit_note`], one durable commit each.
//!
//! Entries live in the catalog under `audit/<20-digit seq>`, as JSON, numbered from 1 with
//! no gap. Each holds the SHA-256 of the previous entry (`prev`; 64 zeros for the first) and
//! its own (`hash`), computed over a domain tag, the previous hash, and every field
//! length-prefixed:
//!
//! ```text
//! hash = SHA-256("tradestore-audit-v1" | prev (32 bytes) | seq (u64 BE) | at_ns (u64 BE)
//!                | len(actor) (u64 BE) | actor | len(action) | action | len(detail) | detail)
//! ```
//!
//! [`Store::verify_audit`] recomputes the chain: an entry edited in place, removed from the
//! middle, or inserted out of sequence breaks it at that entry. Truncation at the end leaves a
//! valid shorter chain; it shows against a head (sequence number and hash) recorded outside the
//! store, which [`AuditReport::contains`] checks. The chain makes tampering evident; it does
//! not prevent it (whoever can write the file can recompute every hash after the edit), which is
//! what keeping heads elsewhere is for.
//!
//! The trail is in the catalog, so backups, restores from backup and compaction keep it. A
//! standby holds its backup's trail; changes outside the journal are not followed by it.

use std::sync::OnceLock;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::layout::CATALOG;
use crate::store::Store;

/// The catalog prefix of audit entries.
const PREFIX: &str = "audit/";
/// The first key after every `audit/...` key (`'0'` follows `'/'`).
const PREFIX_END: &str = "audit0";
/// The domain tag that starts every hashed message.
const DOMAIN: &[u8] = b"tradestore-audit-v1";
/// The longest action name.
pub const MAX_ACTION_CHARS: usize = 64;
/// The largest detail of a note.
pub const MAX_DETAIL_BYTES: usize = 64 << 10;
/// At most this many problems are listed by a verification; the count goes on.
const MAX_PROBLEMS: usize = 100;

/// One entry of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its number: 1, 2, 3, ... with no gap.
    pub seq: u64,
    /// When, in nanoseconds since the Unix epoch (never before the previous entry's time).
    pub at_ns: u64,
    /// Who: `TRADESTORE_ACTOR`, else the `USER` or `LOGNAME` of the process, else its
    /// `uid N`, else `unknown`.
    pub actor: String,
    /// What: `index.create`, `index.ready`, `index.drop`, `index.abandon`, `migrate`,
    /// `restore`, `archive`, or an application's own action.
    pub action: String,
    /// The change, in words.
    pub detail: String,
    /// The previous entry's hash, 64 hex digits (zeros for the first entry).
    pub prev: String,
    /// This entry's hash, 64 hex digits.
    pub hash: String,
}

/// The newest entry of a chain: a value worth keeping outside the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    /// The entry's number.
    pub seq: u64,
    /// Its hash, 64 hex digits.
    pub hash: String,
}

impl std::fmt::Display for AuditHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl std::str::FromStr for AuditHead {
    type Err = Error;

    /// Parses `SEQ:HASH`, as printed.
    fn from_str(s: &str) -> Result<AuditHead> {
        let bad = || {
            Error::invalid(format!(
                "an audit head is SEQ:HASH (a number, a colon, 64 hex digits), not {s:?}"
            ))
        };
        let (seq, hash) = s.split_once(':').ok_or_else(bad)?;
        let seq: u64 = seq.trim().parse().map_err(|_| bad())?;
        let hash = hash.trim().to_ascii_lowercase();
        if seq == 0 || decode_hash(&hash).is_none() {
            return Err(bad());
        }
        Ok(AuditHead { seq, hash })
    }
}

/// Something wrong with the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditProblem {
    /// The catalog key of the entry concerned.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// What [`Store::verify_audit`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Entries read.
    pub entries: u64,
    /// The last entry, if any.
    pub head: Option<AuditHead>,
    /// Problems found (at most 100 listed).
    pub problems: Vec<AuditProblem>,
    /// Problems found in all.
    pub problem_count: u64,
    /// Each entry's hash, by sequence number, kept to check heads against.
    #[serde(skip)]
    hashes: Vec<(u64, String)>,
}

impl AuditReport {
    /// Whether the chain is intact.
    pub fn is_intact(&self) -> bool {
        self.problem_count == 0
    }

    /// Whether the chain holds `head`: the entry numbered `head.seq` has hash `head.hash`.
    /// A head recorded earlier that is no longer held means the trail was cut or rewritten.
    pub fn contains(&self, head: &AuditHead) -> bool {
        self.hashes
            .binary_search_by_key(&head.seq, |(s, _)| *s)
            .is_ok_and(|i| self.hashes[i].1 == head.hash)
    }

    fn problem(&mut self, key: &str, message: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(AuditProblem {
                key: key.to_owned(),
                message,
            });
        }
    }
}

/// Who this process acts as.
pub fn actor() -> &'static str {
    static ACTOR: OnceLock<String> = OnceLock::new();
    ACTOR.get_or_init(|| {
        ["TRADESTORE_ACTOR", "USER", "LOGNAME"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .map(|v| {
                v.trim()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(128)
                    .collect::<String>()
            })
            .find(|v| !v.is_empty())
            .or_else(uid)
            .unwrap_or_else(|| "unknown".to_owned())
    })
}

/// `uid N` of this process, where `/proc` tells it (Linux), when no variable names the user.
fn uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    let id: u32 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("uid {id}"))
}

/// `bytes` as lowercase hex digits.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn decode_hash(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn digest(
    prev: &[u8; 32],
    seq: u64,
    at_ns: u64,
    actor: &str,
    action: &str,
    detail: &str,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(at_ns.to_be_bytes());
    for field in [actor, action, detail] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().into()
}

fn key(seq: u64) -> String {
    format!("{PREFIX}{seq:020}")
}

/// The last entry of the trail in `table`, with its hash decoded; an error when it does not
/// decode, since nothing can be chained to it.
fn last_entry(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<(AuditEntry, [u8; 32])>> {
    table
        .range(PREFIX..PREFIX_END)?
        .next_back()
        .transpose()?
        .map(|(k, v)| {
            let k = k.value().to_owned();
            serde_json::from_slice::<AuditEntry>(v.value())
                .ok()
                .and_then(|e| decode_hash(&e.hash).map(|h| (e, h)))
                .ok_or_else(|| {
                    Error::corruption(format!(
                        "the audit trail's last entry ({k}) is unreadable; nothing more can be \
                         chained to it (tradestore audit verify shows the damage)"
                    ))
                })
        })
        .transpose()
}

/// The trail's last entry in `db` (the catalog exists from the store's first open).
fn last_in(db: &redb::Database) -> Result<Option<(AuditEntry, [u8; 32])>> {
    last_entry(&db.begin_read()?.open_table(CATALOG)?)
}

/// Checks that an entry can be appended, before a change that cannot be undone in memory
/// starts (an index drop takes the index out of use before its commit).
pub(crate) fn ready(db: &redb::Database) -> Result<()> {
    last_in(db).map(|_| ())
}

/// Appends an entry to the trail in `txn`: it commits with the change it records.
pub(crate) fn append(txn: &WriteTransaction, action: &str, detail: &str) -> Result<AuditEntry> {
    let mut catalog = txn.open_table(CATALOG)?;
    let last = last_entry(&catalog)?;
    let (seq, prev, after) = match &last {
        Some((e, h)) => (e.seq + 1, *h, e.at_ns),
        None => (1, [0u8; 32], 0),
    };
    let at_ns = crate::index::now_ns().max(after);
    let actor = actor().to_owned();
    let hash = digest(&prev, seq, at_ns, &actor, action, detail);
    let entry = AuditEntry {
        seq,
        at_ns,
        actor,
        action: action.to_owned(),
        detail: detail.to_owned(),
        prev: hex(&prev),
        hash: hex(&hash),
    };
    let json = serde_json::to_vec(&entry)
        .map_err(|e| Error::invalid(format!("encoding an audit entry: {e}")))?;
    catalog.insert(key(seq).as_str(), json.as_slice())?;
    Ok(entry)
}

/// Entries numbered above `after`, oldest first, at most `limit`.
pub(crate) fn entries(txn: &ReadTransaction, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
    let catalog = txn.open_table(CATALOG)?;
    let from = key(after.saturating_add(1));
    let mut out = Vec::new();
    for item in catalog.range(from.as_str()..PREFIX_END)? {
        if out.len() >= limit {
            break;
        }
        let (k, v) = item?;
        out.push(serde_json::from_slice(v.value()).map_err(|e| {
            Error::corruption(format!(
                "audit entry {} is unreadable: {e} (tradestore audit verify shows the damage)",
                k.value()
            ))
        })?);
    }
    Ok(out)
}

/// Recomputes the whole chain.
fn verify(txn: &ReadTransaction) -> Result<AuditReport> {
    let catalog = txn.open_table(CATALOG)?;
    let mut report = AuditReport {
        entries: 0,
        head: None,
        problems: Vec::new(),
        problem_count: 0,
        hashes: Vec::new(),
    };
    let mut expected = 1u64;
    // The hash the next entry must name; `None` after an unreadable entry.
    let mut prev = Some([0u8; 32]);
    let mut last_at = 0u64;
    for item in catalog.range(PREFIX..PREFIX_END)? {
        let (k, v) = item?;
        let k = k.value().to_owned();
        report.entries += 1;
        let from_key = k
            .strip_prefix(PREFIX)
            .filter(|d| d.len() == 20)
            .and_then(|d| d.parse::<u64>().ok());
        let entry = match serde_json::from_slice::<AuditEntry>(v.value()) {
            Ok(e) => e,
            Err(e) => {
                report.problem(&k, format!("unreadable: {e}"));
                // The next entry cannot be checked against this one's hash; it is checked
                // against its own `prev` only from there on.
                if let Some(s) = from_key {
                    expected = s.saturating_add(1);
                }
                prev = None;
                continue;
            }
        };
        if from_key != Some(entry.seq) {
            report.problem(&k, format!("holds entry {} under another key", entry.seq));
        }
        if entry.seq != expected {
            report.problem(
                &k,
                if entry.seq > expected {
                    format!(
                        "entry {} follows entry {}: {} entr{} missing",
                        entry.seq,
                        expected.saturating_sub(1),
                        entry.seq - expected,
                        if entry.seq - expected == 1 {
                            "y is"
                        } else {
                            "ies are"
                        }
                    )
                } else {
                    format!(
                        "entry {} is out of sequence (expected {expected})",
                        entry.seq
                    )
                },
            );
        }
        let stated_prev = decode_hash(&entry.prev);
        if let Some(p) = prev.filter(|p| stated_prev != Some(*p)) {
            report.problem(
                &k,
                format!(
                    "does not follow the previous entry: its prev is {}, the previous entry's \
                     hash is {}",
                    entry.prev.escape_debug(),
                    hex(&p)
                ),
            );
        }
        let chained_from = stated_prev.or(prev).unwrap_or_default();
        let computed = digest(
            &chained_from,
            entry.seq,
            entry.at_ns,
            &entry.actor,
            &entry.action,
            &entry.detail,
        );
        if decode_hash(&entry.hash) != Some(computed) {
            report.problem(
                &k,
                format!(
                    "altered: its contents hash to {}, not to the {} it holds",
                    hex(&computed),
                    entry.hash.escape_debug()
                ),
            );
        }
        if entry.at_ns < last_at {
            report.problem(&k, "its time is before the previous entry's".to_owned());
        }
        last_at = entry.at_ns;
        prev = Some(decode_hash(&entry.hash).unwrap_or(computed));
        expected = entry.seq.saturating_add(1);
        report.hashes.push((entry.seq, entry.hash.clone()));
        report.head = Some(AuditHead {
            seq: entry.seq,
            hash: entry.hash,
        });
    }
    report.hashes.sort_unstable();
    Ok(report)
}

/// The actions the store itself records; a note may not take their names.
const RESERVED: &[&str] = &["migrate", "restore", "archive", "backup.restore"];

/// Whether `action` is a valid action name: 1 to 64 of a-z, 0-9, `.`, `_`, `-`, and not
/// one the store records itself (those and every `index.` action).
fn check_action(action: &str) -> Result<()> {
    if RESERVED.contains(&action) || action.starts_with("index.") {
        return Err(Error::invalid(format!(
            "{action} is an action the store records itself; name the note's action \
             differently (for example note.{action})"
        )));
    }
    let ok = !action.is_empty()
        && action.len() <= MAX_ACTION_CHARS
        && action
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "an audit action is 1 to {MAX_ACTION_CHARS} characters of a-z, 0-9, '.', '_' and \
             '-', not {action:?}"
        )))
    }
}

impl Store {
    /// Audit entries numbered above `after`, oldest first, at most `limit`.
    pub fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        entries(&self.shared.db.begin_read()?, after, limit)
    }

    /// The audit trail's last entry, without checking the chain; an error when it does
    /// not decode.
    pub fn audit_head(&self) -> Result<Option<AuditHead>> {
        Ok(last_in(&self.shared.db)?.map(|(e, _)| AuditHead {
            seq: e.seq,
            hash: e.hash,
        }))
    }

    /// Recomputes the audit trail's hash chain from its first entry.
    pub fn verify_audit(&self) -> Result<AuditReport> {
        verify(&self.shared.db.begin_read()?)
    }

    /// Appends an application's own entry (`action`: 1 to 64 of a-z, 0-9, `.`, `_`, `-`;
    /// `detail`: at most 64 KiB) in one durable commit, and returns it once durable.
    pub fn audit_note(&self, action: &str, detail: &str) -> Result<AuditEntry> {
        check_action(action)?;
        if detail.len() > MAX_DETAIL_BYTES {
            return Err(Error::invalid(format!(
                "an audit detail is at most {MAX_DETAIL_BYTES} bytes, not {}",
                detail.len()
            )));
        }
        self.record_audit(action, detail)
    }

    /// Appends an entry of the engine's own in one durable commit.
    pub(crate) fn record_audit(&self, action: &str, detail: &str) -> Result<AuditEntry> {
        let shared = &self.shared;
        if shared.poisoned.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(shared.poison_error());
        }
        let mut txn = shared.db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        let entry = append(&txn, action, detail)?;
        shared.commit_redb(txn, None)?;
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_heads_parse() -> Result<()> {
        let h = digest(&[7u8; 32], 3, 9, "ops", "index.drop", "x");
        assert_eq!(decode_hash(&hex(&h)), Some(h));
        assert_eq!(decode_hash("zz"), None);
        assert_eq!(decode_hash(&"g".repeat(64)), None);
        let head: AuditHead = format!("12:{}", hex(&h).to_uppercase()).parse()?;
        assert_eq!(head.seq, 12);
        assert_eq!(head.hash, hex(&h));
        assert_eq!(head.to_string(), format!("12:{}", hex(&h)));
        for bad in ["", "12", ":abc", "0:00", "x:y", "5:1234"] {
            assert!(bad.parse::<AuditHead>().is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn every_field_is_in_the_hash() {
        let base = digest(&[0u8; 32], 1, 2, "a", "b", "c");
        assert_ne!(base, digest(&[1u8; 32], 1, 2, "a", "b", "c"));
        assert_ne!(base, digest(&[0u8; 32], 2, 2, "a", "b", "c"));
        assert_ne!(base, digest(&[0u8; 32], 1, 3, "a", "b", "c"));
        assert_ne!(base, digest(&[0u8; 32], 1, 2, "ab", "", "c"));
        assert_ne!(base, digest(&[0u8; 32], 1, 2, "a", "bc", ""));
        assert_ne!(base, digest(&[0u8; 32], 1, 2, "a", "b", "d"));
    }

    #[test]
    fn action_names_are_checked() {
        assert!(check_action("kill-switch.on").is_ok());
        assert!(check_action("").is_err());
        assert!(check_action("Kill").is_err());
        assert!(check_action("a b").is_err());
        assert!(check_action(&"a".repeat(65)).is_err());
        assert!(check_action("migrate").is_err());
        assert!(check_action("index.drop").is_err());
        assert!(check_action("note.migrate").is_ok());
    }
}
