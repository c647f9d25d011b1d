//! Configuration: a profile's defaults, then `tradestore.toml` in the store's directory,
//! then `TRADESTORE_*` environment variables, each layer overriding the one before.
//!
//! | key | env | dev | test | prod | meaning |
//! |---|---|---|---|---|---|
//! | `profile` | `TRADESTORE_PROFILE` | | | | which defaults apply: `dev`, `test` or `prod` |
//! | `cache_size_mb` | `TRADESTORE_CACHE_SIZE_MB` | 64 | 16 | 1024 | redb page cache, MiB (1..=1048576) |
//! | `row_cache_mb` | `TRADESTORE_ROW_CACHE_MB` | 0 | 0 | 0 | row cache for point reads of hot rows, MiB (0: off) |
//! | `recent_trades` | `TRADESTORE_RECENT_TRADES` | 262144 | 262144 | 262144 | the newest trades kept in memory for reads by id, slots (rounded up to a power of two; 0: off) |
//! | `instrument_tail_mb` | `TRADESTORE_INSTRUMENT_TAIL_MB` | 64 | 64 | 64 | the newest 256 entries of each instrument's trades index kept in memory for newest-first reads (`recent_trades`), MiB at most (0: off) |
//! | `archive_cache_mb` | `TRADESTORE_ARCHIVE_CACHE_MB` | 64 | 64 | 64 | decoded archive segments kept in memory for reads of archived trades, MiB |
//! | `archive_after_s` | `TRADESTORE_ARCHIVE_AFTER_S` | 0 | 0 | 0 | archive trades older than this many seconds in the background, every minute (0: off; `tradestore archive` runs it by hand) |
//! | `max_value_bytes` | `TRADESTORE_MAX_VALUE_BYTES` | 65536 | 65536 | 65536 | largest encoded record accepted, bytes |
//! | `check_on_open` | `TRADESTORE_CHECK_ON_OPEN` | false | true | false | run redb's full integrity check when opening |
//! | `journal_segment_mb` | `TRADESTORE_JOURNAL_SEGMENT_MB` | 8 | 4 | 64 | size of a preallocated journal segment, MiB |
//! | `journal_direct_io` | `TRADESTORE_JOURNAL_DIRECT_IO` | true | true | true | append to the journal with `O_DIRECT \| O_DSYNC` where the file system has it (Linux); false: buffered writes and fdatasync |
//! | `keep_journal` | `TRADESTORE_KEEP_JOURNAL` | false | false | false | keep checkpointed segments in `archive/journal` (point-in-time recovery) |
//! | `accept_journal_loss` | `TRADESTORE_ACCEPT_JOURNAL_LOSS` | false | false | false | open a store whose journal lost acknowledged records (its tail deleted, cut or overwritten), keeping what is left; for one run, never by default |
//! | `checkpoint_interval_ms` | `TRADESTORE_CHECKPOINT_INTERVAL_MS` | 1000 | 200 | 1000 | how often the applier makes a durable redb checkpoint |
//! | `checkpoint_mb` | `TRADESTORE_CHECKPOINT_MB` | 64 | 64 | 64 | or after this much journal has been applied since the last one |
//! | `overlay_max_mb` | `TRADESTORE_OVERLAY_MAX_MB` | 256 | 64 | 1024 | committed-but-unapplied data above which commits wait |
//! | `restore_max_mb` | `TRADESTORE_RESTORE_MAX_MB` | 4096 | 1024 | 4096 | rows a dump restore may hold in memory before its commit, MiB (16..=1048576) |
//! | `lock_timeout_ms` | `TRADESTORE_LOCK_TIMEOUT_MS` | 1000 | 1000 | 1000 | how long a pessimistic lock waits |
//! | `breaker_failures` | `TRADESTORE_BREAKER_FAILURES` | 5 | 5 | 5 | consecutive storage failures that open the circuit breaker |
//! | `breaker_cooldown_ms` | `TRADESTORE_BREAKER_COOLDOWN_MS` | 1000 | 1000 | 1000 | how long an open breaker refuses I/O before probing |
//! | `plan_cache_size` | `TRADESTORE_PLAN_CACHE_SIZE` | 256 | 256 | 1024 | query plans kept, by query shape (1..=1000000) |
//! | `index_auto` | `TRADESTORE_INDEX_AUTO` | false | false | false | let the index manager build recommended indexes and drop unused ones |
//! | `index_auto_interval_ms` | `TRADESTORE_INDEX_AUTO_INTERVAL_MS` | 60000 | 60000 | 60000 | how often the index manager reviews the recorded workload |
//! | `index_auto_min_benefit` | `TRADESTORE_INDEX_AUTO_MIN_BENEFIT` | 100000 | 100000 | 100000 | estimated cost saved (row reads, over the recorded workload) an index must bring to be built |
//! | `monitor` | `TRADESTORE_MONITOR` | true | true | true | run the sampler: time series at 1 s, minutes kept in the store |
//! | `monitor_interval_ms` | `TRADESTORE_MONITOR_INTERVAL_MS` | 1000 | 1000 | 1000 | how often the sampler samples (100..=60000) |
//! | `metrics_retention_h` | `TRADESTORE_METRICS_RETENTION_H` | 168 | 24 | 720 | hours of downsampled minutes kept in the store |
//! | `health_checkpoint_age_s` | `TRADESTORE_HEALTH_CHECKPOINT_AGE_S` | 60 | 60 | 60 | checkpoint age that degrades health (5x fails it) |
//! | `health_disk_min_mb` | `TRADESTORE_HEALTH_DISK_MIN_MB` | 1024 | 64 | 4096 | free disk under which health degrades (a quarter fails it) |
//! | `health_commit_p99_ms` | `TRADESTORE_HEALTH_COMMIT_P99_MS` | 50 | 50 | 50 | commit p99 objective (10x fails health) |
//! | `index_unused_drop_s` | `TRADESTORE_INDEX_UNUSED_DROP_S` | 86400 | 86400 | 86400 | an index created at run time and unused this long is dropped (auto mode) |
//!
//! An unknown key or variable, or a value of the wrong type or out of range, is a
//! [`ErrorKind::Config`](crate::ErrorKind::Config) error that names it.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The name of the configuration file inside a store's directory.
pub const CONFIG_FILE: &str = "tradestore.toml";

/// Environment variables with the `TRADESTORE_` prefix that belong to the command-line tool
/// or the process, not to the store's configuration: the store directory, the log, a
/// backtrace on an internal failure, and the actor named in audit entries
/// ([`crate::audit::actor`]).
pub const TOOL_ENV_VARS: &[&str] = &[
    "TRADESTORE_DIR",
    "TRADESTORE_LOG",
    "TRADESTORE_BACKTRACE",
    "TRADESTORE_ACTOR",
    "TRADESTORE_MONITOR_TOKEN",
];

/// A named set of defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// A developer's machine: moderate cache.
    #[default]
    Dev,
    /// Test suites: a small cache and integrity checks on open.
    Test,
    /// Production: a large cache.
    Prod,
}

impl Profile {
    /// The profile's name.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Dev => "dev",
            Profile::Test => "test",
            Profile::Prod => "prod",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = Error;
    fn from_str(s: &str) -> Result<Profile> {
        match s {
            "dev" => Ok(Profile::Dev),
            "test" => Ok(Profile::Test),
            "prod" => Ok(Profile::Prod),
            _ => Err(Error::config(format!(
                "profile {s:?} is not one of dev, test, prod"
            ))),
        }
    }
}

/// The store's configuration. Build one with [`Config::for_profile`] or
/// [`Config::load`]; every field is documented in the module's table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Which defaults were applied.
    pub profile: Profile,
    /// redb page cache in MiB.
    pub cache_size_mb: u64,
    /// Row cache (rows read by key, in front of redb), MiB; 0 turns it off.
    pub row_cache_mb: u64,
    /// Slots of the ring of the newest trades (reads by id); 0 turns it off.
    pub recent_trades: u64,
    /// Bytes (MiB) of the instruments' newest trades index entries held in memory; 0 turns
    /// them off.
    pub instrument_tail_mb: u64,
    /// Decoded archive segments kept in memory, MiB ([`crate::archive`]).
    pub archive_cache_mb: u64,
    /// Archive trades older than this many seconds in the background; 0 turns it off.
    pub archive_after_s: u64,
    /// Largest encoded record accepted, in bytes.
    pub max_value_bytes: u64,
    /// Run redb's integrity check on open.
    pub check_on_open: bool,
    /// Size of a journal segment, MiB.
    pub journal_segment_mb: u64,
    /// Append to the journal with direct, synchronous writes where the file system has them.
    pub journal_direct_io: bool,
    /// Keep released journal segments (in `archive/journal`) instead of deleting them.
    pub keep_journal: bool,
    /// Open even when the journal lost acknowledged records: its end is cut where the
    /// damage starts and the loss is reported in the recovery. Off, such a store is refused.
    pub accept_journal_loss: bool,
    /// How often the applier makes a durable redb checkpoint, ms.
    pub checkpoint_interval_ms: u64,
    /// Journal bytes applied since the last checkpoint that trigger the next one, MiB.
    pub checkpoint_mb: u64,
    /// Overlay size above which commits wait for the applier (backpressure), MiB.
    pub overlay_max_mb: u64,
    /// Rows a dump restore may hold in memory (parsed and encoded) before its one commit,
    /// MiB; a larger dump is refused before it exhausts the process's memory.
    pub restore_max_mb: u64,
    /// How long a pessimistic lock waits before giving up, ms.
    pub lock_timeout_ms: u64,
    /// Consecutive storage failures that open the circuit breaker.
    pub breaker_failures: u64,
    /// How long an open circuit breaker refuses storage I/O before a probe, ms.
    pub breaker_cooldown_ms: u64,
    /// Query plans kept in the plan cache.
    pub plan_cache_size: u64,
    /// Whether the index manager builds and drops indexes by itself.
    pub index_auto: bool,
    /// How often the index manager reviews the workload, ms.
    pub index_auto_interval_ms: u64,
    /// Estimated cost saved over the recorded workload for an automatic build.
    pub index_auto_min_benefit: u64,
    /// Seconds without use after which an index created at run time is dropped (auto).
    pub index_unused_drop_s: u64,
    /// Whether the sampler runs.
    pub monitor: bool,
    /// Sampling interval, ms.
    pub monitor_interval_ms: u64,
    /// Hours of downsampled metrics kept.
    pub metrics_retention_h: u64,
    /// Checkpoint age that degrades health, s.
    pub health_checkpoint_age_s: u64,
    /// Free disk under which health degrades, MiB.
    pub health_disk_min_mb: u64,
    /// Commit p99 objective, ms.
    pub health_commit_p99_ms: u64,
}

/// The file's shape: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    profile: Option<Profile>,
    cache_size_mb: Option<u64>,
    row_cache_mb: Option<u64>,
    recent_trades: Option<u64>,
    instrument_tail_mb: Option<u64>,
    archive_cache_mb: Option<u64>,
    archive_after_s: Option<u64>,
    max_value_bytes: Option<u64>,
    check_on_open: Option<bool>,
    journal_segment_mb: Option<u64>,
    journal_direct_io: Option<bool>,
    keep_journal: Option<bool>,
    accept_journal_loss: Option<bool>,
    checkpoint_interval_ms: Option<u64>,
    checkpoint_mb: Option<u64>,
    overlay_max_mb: Option<u64>,
    restore_max_mb: Option<u64>,
    lock_timeout_ms: Option<u64>,
    breaker_failures: Option<u64>,
    breaker_cooldown_ms: Option<u64>,
    plan_cache_size: Option<u64>,
    index_auto: Option<bool>,
    index_auto_interval_ms: Option<u64>,
    index_auto_min_benefit: Option<u64>,
    index_unused_drop_s: Option<u64>,
    monitor: Option<bool>,
    monitor_interval_ms: Option<u64>,
    metrics_retention_h: Option<u64>,
    health_checkpoint_age_s: Option<u64>,
    health_disk_min_mb: Option<u64>,
    health_commit_p99_ms: Option<u64>,
}

/// The keys of the file (and, upper-cased with `TRADESTORE_`, the environment variables).
const KEYS: &[&str] = &[
    "profile",
    "cache_size_mb",
    "row_cache_mb",
    "recent_trades",
    "instrument_tail_mb",
    "archive_cache_mb",
    "archive_after_s",
    "max_value_bytes",
    "check_on_open",
    "journal_segment_mb",
    "journal_direct_io",
    "keep_journal",
    "accept_journal_loss",
    "checkpoint_interval_ms",
    "checkpoint_mb",
    "overlay_max_mb",
    "restore_max_mb",
    "lock_timeout_ms",
    "breaker_failures",
    "breaker_cooldown_ms",
    "plan_cache_size",
    "index_auto",
    "index_auto_interval_ms",
    "index_auto_min_benefit",
    "index_unused_drop_s",
    "monitor",
    "monitor_interval_ms",
    "metrics_retention_h",
    "health_checkpoint_age_s",
    "health_disk_min_mb",
    "health_commit_p99_ms",
];

macro_rules! layer {
    ($($field:ident),+) => {
        impl FileConfig {
            /// Each value of `self`, or `under`'s where `self` has none.
            fn or(self, under: FileConfig) -> FileConfig {
                FileConfig { $($field: self.$field.or(under.$field)),+ }
            }

            /// Sets every value present (the profile was applied already).
            fn apply(self, c: &mut Config) {
                $(if let Some(v) = self.$field { c.$field = v; })+
            }
        }
    };
}

layer!(
    profile,
    cache_size_mb,
    row_cache_mb,
    recent_trades,
    instrument_tail_mb,
    archive_cache_mb,
    archive_after_s,
    max_value_bytes,
    check_on_open,
    journal_segment_mb,
    journal_direct_io,
    keep_journal,
    accept_journal_loss,
    checkpoint_interval_ms,
    checkpoint_mb,
    overlay_max_mb,
    restore_max_mb,
    lock_timeout_ms,
    breaker_failures,
    breaker_cooldown_ms,
    plan_cache_size,
    index_auto,
    index_auto_interval_ms,
    index_auto_min_benefit,
    index_unused_drop_s,
    monitor,
    monitor_interval_ms,
    metrics_retention_h,
    health_checkpoint_age_s,
    health_disk_min_mb,
    health_commit_p99_ms
);

impl Default for Config {
    fn default() -> Config {
        Config::for_profile(Profile::Dev)
    }
}

impl Config {
    /// The defaults of a profile.
    pub fn for_profile(profile: Profile) -> Config {
        let base = Config {
            profile,
            cache_size_mb: 64,
            // Off unless asked for: it pays for re-read rows, and costs a first read of a
            // row about 15% (README, The write path: "Row cache").
            row_cache_mb: 0,
            // A slot is 144 bytes, the record held in it: a full ring of 262144 is 36 MiB,
            // allocated as trades arrive.
            recent_trades: 262_144,
            // An instrument read holds about 256 entries of 150 bytes (40 KB): 64 MiB is
            // about 1,600 instruments, filled as they are read.
            instrument_tail_mb: 64,
            // About one segment of trades with its index entries.
            archive_cache_mb: 64,
            archive_after_s: 0,
            max_value_bytes: 65_536,
            check_on_open: false,
            journal_segment_mb: 8,
            journal_direct_io: true,
            keep_journal: false,
            accept_journal_loss: false,
            checkpoint_interval_ms: 1000,
            checkpoint_mb: 64,
            overlay_max_mb: 256,
            restore_max_mb: 4096,
            lock_timeout_ms: 1000,
            breaker_failures: 5,
            breaker_cooldown_ms: 1000,
            plan_cache_size: 256,
            index_auto: false,
            index_auto_interval_ms: 60_000,
            index_auto_min_benefit: 100_000,
            index_unused_drop_s: 86_400,
            monitor: true,
            monitor_interval_ms: 1000,
            metrics_retention_h: 168,
            health_checkpoint_age_s: 60,
            health_disk_min_mb: 1024,
            health_commit_p99_ms: 50,
        };
        match profile {
            Profile::Dev => base,
            Profile::Test => Config {
                cache_size_mb: 16,
                check_on_open: true,
                journal_segment_mb: 4,
                checkpoint_interval_ms: 200,
                overlay_max_mb: 64,
                restore_max_mb: 1024,
                metrics_retention_h: 24,
                health_disk_min_mb: 64,
                ..base
            },
            Profile::Prod => Config {
                cache_size_mb: 1024,
                overlay_max_mb: 1024,
                journal_segment_mb: 64,
                plan_cache_size: 1024,
                metrics_retention_h: 720,
                health_disk_min_mb: 4096,
                ..base
            },
        }
    }

    /// Loads the configuration of the store in `dir`: the profile's defaults, overridden by
    /// `dir/tradestore.toml` if it exists, overridden by `TRADESTORE_*` variables.
    pub fn load(dir: &Path) -> Result<Config> {
        let path = dir.join(CONFIG_FILE);
        let text = read_text_file(&path)?;
        let mut vars = Vec::new();
        // vars_os: a variable that is not Unicode (anyone's) must not panic the reader; one
        // of ours that is not is a configuration error.
        for (k, v) in std::env::vars_os() {
            if !k.as_encoded_bytes().starts_with(b"TRADESTORE_") {
                continue;
            }
            match (k.into_string(), v.into_string()) {
                (Ok(k), Ok(v)) => vars.push((k, v)),
                (Ok(k), Err(_)) => {
                    return Err(Error::config(format!("{k} is not valid Unicode")));
                }
                (Err(k), _) => {
                    return Err(Error::config(format!(
                        "the environment variable {} is not valid Unicode",
                        k.to_string_lossy()
                    )));
                }
            }
        }
        Config::build(&path.display().to_string(), text.as_deref(), &vars)
    }

    /// Builds a configuration from a TOML text (if any) and environment variables (name,
    /// value), which is what [`Config::load`] does after reading them.
    pub fn from_sources(toml_text: Option<&str>, env: &[(String, String)]) -> Result<Config> {
        Config::build(CONFIG_FILE, toml_text, env)
    }

    fn build(file: &str, toml_text: Option<&str>, env: &[(String, String)]) -> Result<Config> {
        let from_file: FileConfig = match toml_text {
            Some(t) => toml::from_str(t)
                .map_err(|e| Error::config(format!("in {file}: {}", e.to_string().trim())))?,
            None => FileConfig::default(),
        };
        let mut from_env = FileConfig::default();
        for (name, value) in env {
            if TOOL_ENV_VARS.contains(&name.as_str()) {
                continue;
            }
            // Exactly `TRADESTORE_` and the key in capitals: one prefix, one spelling.
            let key = name
                .strip_prefix("TRADESTORE_")
                .filter(|k| k.bytes().all(|b| !b.is_ascii_lowercase()))
                .map(str::to_ascii_lowercase)
                .unwrap_or_default();
            if !KEYS.contains(&key.as_str()) {
                let names: Vec<String> = KEYS
                    .iter()
                    .map(|k| format!("TRADESTORE_{}", k.to_ascii_uppercase()))
                    .collect();
                return Err(Error::config(format!(
                    "unknown environment variable {name}; the configuration variables are {}",
                    names.join(", ")
                )));
            }
            // Each variable is read as the TOML value of its key; a profile is a string.
            let line = if key == "profile" {
                format!("{key} = {:?}", value.trim())
            } else {
                format!("{key} = {}", value.trim())
            };
            // Exactly one value: a value carrying a newline and another `key = value` must
            // not set a second setting.
            let invalid =
                || Error::config(format!("{name}={value:?} is not a valid value for {key}"));
            let table: toml::Table = toml::from_str(&line).map_err(|_| invalid())?;
            if table.len() != 1 {
                return Err(invalid());
            }
            let one: FileConfig = table.try_into().map_err(|_| invalid())?;
            from_env = one.or(from_env);
        }
        let layered = from_env.or(from_file);
        let mut c = Config::for_profile(layered.profile.unwrap_or_default());
        layered.apply(&mut c);
        c.validate()?;
        Ok(c)
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        let range = |key: &str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(Error::config(format!(
                    "{key} = {v} is out of range {lo}..={hi}"
                )))
            }
        };
        range("cache_size_mb", self.cache_size_mb, 1, 1_048_576)?;
        range("row_cache_mb", self.row_cache_mb, 0, 1_048_576)?;
        range("recent_trades", self.recent_trades, 0, 1 << 24)?;
        range("instrument_tail_mb", self.instrument_tail_mb, 0, 1_048_576)?;
        range("archive_cache_mb", self.archive_cache_mb, 0, 1_048_576)?;
        // Up to ten years.
        range("archive_after_s", self.archive_after_s, 0, 315_360_000)?;
        range("max_value_bytes", self.max_value_bytes, 256, 16 << 20)?;
        range("journal_segment_mb", self.journal_segment_mb, 1, 4096)?;
        range(
            "checkpoint_interval_ms",
            self.checkpoint_interval_ms,
            10,
            3_600_000,
        )?;
        range("checkpoint_mb", self.checkpoint_mb, 1, 1_048_576)?;
        range("overlay_max_mb", self.overlay_max_mb, 1, 1_048_576)?;
        range("restore_max_mb", self.restore_max_mb, 16, 1_048_576)?;
        range("lock_timeout_ms", self.lock_timeout_ms, 1, 3_600_000)?;
        range("breaker_failures", self.breaker_failures, 1, 1_000_000)?;
        range(
            "breaker_cooldown_ms",
            self.breaker_cooldown_ms,
            1,
            3_600_000,
        )?;
        range("plan_cache_size", self.plan_cache_size, 1, 1_000_000)?;
        range(
            "index_auto_interval_ms",
            self.index_auto_interval_ms,
            100,
            86_400_000,
        )?;
        range(
            "index_auto_min_benefit",
            self.index_auto_min_benefit,
            1,
            1 << 60,
        )?;
        range(
            "index_unused_drop_s",
            self.index_unused_drop_s,
            1,
            31_536_000,
        )?;
        range("monitor_interval_ms", self.monitor_interval_ms, 100, 60_000)?;
        range("metrics_retention_h", self.metrics_retention_h, 1, 87_600)?;
        range(
            "health_checkpoint_age_s",
            self.health_checkpoint_age_s,
            1,
            86_400,
        )?;
        range("health_disk_min_mb", self.health_disk_min_mb, 0, 1 << 30)?;
        range(
            "health_commit_p99_ms",
            self.health_commit_p99_ms,
            1,
            3_600_000,
        )
    }

    /// The configuration as the TOML text `init` writes.
    pub fn to_toml(&self) -> String {
        let c = self;
        format!(
            "# tradestore configuration; every key is optional and overrides the profile's default.\n\
             profile = \"{}\"\ncache_size_mb = {}\nrow_cache_mb = {}\nrecent_trades = {}\ninstrument_tail_mb = {}\narchive_cache_mb = {}\narchive_after_s = {}\nmax_value_bytes = {}\ncheck_on_open = {}\n\
             journal_segment_mb = {}\njournal_direct_io = {}\nkeep_journal = {}\ncheckpoint_interval_ms = {}\ncheckpoint_mb = {}\n\
             overlay_max_mb = {}\nrestore_max_mb = {}\nlock_timeout_ms = {}\nbreaker_failures = {}\nbreaker_cooldown_ms = {}\n\
             plan_cache_size = {}\nindex_auto = {}\nindex_auto_interval_ms = {}\nindex_auto_min_benefit = {}\n\
             index_unused_drop_s = {}\nmonitor = {}\nmonitor_interval_ms = {}\nmetrics_retention_h = {}\n\
             health_checkpoint_age_s = {}\nhealth_disk_min_mb = {}\nhealth_commit_p99_ms = {}\n",
            c.profile,
            c.cache_size_mb,
            c.row_cache_mb,
            c.recent_trades,
            c.instrument_tail_mb,
            c.archive_cache_mb,
            c.archive_after_s,
            c.max_value_bytes,
            c.check_on_open,
            c.journal_segment_mb,
            c.journal_direct_io,
            c.keep_journal,
            c.checkpoint_interval_ms,
            c.checkpoint_mb,
            c.overlay_max_mb,
            c.restore_max_mb,
            c.lock_timeout_ms,
            c.breaker_failures,
            c.breaker_cooldown_ms,
            c.plan_cache_size,
            c.index_auto,
            c.index_auto_interval_ms,
            c.index_auto_min_benefit,
            c.index_unused_drop_s,
            c.monitor,
            c.monitor_interval_ms,
            c.metrics_retention_h,
            c.health_checkpoint_age_s,
            c.health_disk_min_mb,
            c.health_commit_p99_ms
        )
    }
}

/// The text of a configuration file, `None` if it does not exist. A file that is not UTF-8,
/// not a regular file, or over 1 MiB is a configuration error (the file needs fixing), not a
/// storage failure.
pub fn read_text_file(path: &Path) -> Result<Option<String>> {
    use std::io::Read;
    // Only a regular file: opening a FIFO blocks, and a device (a link to /dev/zero, say)
    // never ends. Checked before opening, for the FIFO's sake.
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        // A link to nothing is a mistake to name, not a missing file to ignore.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && std::fs::symlink_metadata(path).is_ok() =>
        {
            return Err(Error::config(format!(
                "{} is a symbolic link to a file that does not exist",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    if !meta.is_file() {
        return Err(Error::config(format!(
            "{} is not a regular file: replace it with a text file, or remove it",
            path.display()
        )));
    }
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mut bytes = Vec::new();
    file.take(MAX_TEXT_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if bytes.len() as u64 > MAX_TEXT_FILE {
        return Err(Error::config(format!(
            "{} is over {} KiB, far more than any configuration: fix or replace the file",
            path.display(),
            MAX_TEXT_FILE >> 10
        )));
    }
    String::from_utf8(bytes).map(Some).map_err(|e| {
        Error::config(format!(
            "{} is not UTF-8 text (byte {} is not valid): fix or replace the file",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// The largest configuration file read (tradestore.toml, alerts.toml).
const MAX_TEXT_FILE: u64 = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn layers_override_in_order() {
        let c = Config::from_sources(Some("profile = \"prod\"\ncache_size_mb = 10\n"), &env(&[]))
            .unwrap();
        assert_eq!((c.profile, c.cache_size_mb), (Profile::Prod, 10));
        let c = Config::from_sources(
            Some("cache_size_mb = 10"),
            &env(&[("TRADESTORE_CACHE_SIZE_MB", "20")]),
        )
        .unwrap();
        assert_eq!(c.cache_size_mb, 20);
        let c = Config::from_sources(None, &env(&[("TRADESTORE_PROFILE", "test")])).unwrap();
        assert_eq!(c, Config::for_profile(Profile::Test));
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_sources(Some("cache_size = 3"), &env(&[])).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Config);
        assert!(e.to_string().contains("cache_size"), "{e}");
        let e = Config::from_sources(None, &env(&[("TRADESTORE_CACHE", "3")])).unwrap_err();
        assert!(e.to_string().contains("TRADESTORE_CACHE"), "{e}");
        // One prefix, the key in capitals: near misses are named, not read.
        for name in [
            "TRADESTORE_TRADESTORE_CACHE_SIZE_MB",
            "TRADESTORE_cache_size_mb",
            "CACHE_SIZE_MB",
        ] {
            let e = Config::from_sources(None, &env(&[(name, "3")])).unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
        }
        // The tools' own variables (the monitor's token among them) are not settings.
        let c = Config::from_sources(None, &env(&[("TRADESTORE_MONITOR_TOKEN", "s3cret")]));
        assert!(c.is_ok(), "{c:?}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::from_sources(Some("cache_size_mb = \"big\""), &env(&[])).unwrap_err();
        assert!(e.to_string().contains("cache_size_mb"), "{e}");
        let e = Config::from_sources(Some("cache_size_mb = 0"), &env(&[])).unwrap_err();
        assert!(e.to_string().contains("cache_size_mb"), "{e}");
        let e = Config::from_sources(None, &env(&[("TRADESTORE_PROFILE", "staging")])).unwrap_err();
        assert!(e.to_string().contains("staging"), "{e}");
        let e =
            Config::from_sources(None, &env(&[("TRADESTORE_CACHE_SIZE_MB", "-1")])).unwrap_err();
        assert!(e.to_string().contains("TRADESTORE_CACHE_SIZE_MB"), "{e}");
    }

    #[test]
    fn a_variable_sets_one_value_only() {
        let e = Config::from_sources(
            None,
            &env(&[("TRADESTORE_CACHE_SIZE_MB", "20\nmonitor = false")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("TRADESTORE_CACHE_SIZE_MB"), "{e}");
    }

    #[test]
    fn a_config_file_that_is_not_a_regular_file_or_too_big_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CONFIG_FILE);
        assert_eq!(read_text_file(&path).unwrap(), None);
        std::fs::create_dir(&path).unwrap();
        let e = read_text_file(&path).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Config);
        assert!(e.to_string().contains("not a regular file"), "{e}");
        std::fs::remove_dir(&path).unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
            let e = read_text_file(&path).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{e}");
            std::fs::remove_file(&path).unwrap();
            std::os::unix::fs::symlink(dir.path().join("nowhere"), &path).unwrap();
            let e = read_text_file(&path).unwrap_err();
            assert!(e.to_string().contains("does not exist"), "{e}");
            std::fs::remove_file(&path).unwrap();
        }
        std::fs::write(&path, vec![b'#'; (MAX_TEXT_FILE + 1) as usize]).unwrap();
        let e = read_text_file(&path).unwrap_err();
        assert!(e.to_string().contains("KiB"), "{e}");
        std::fs::write(&path, "cache_size_mb = 10\n").unwrap();
        assert_eq!(
            read_text_file(&path).unwrap().as_deref(),
            Some("cache_size_mb = 10\n")
        );
    }

    #[test]
    fn written_toml_loads_back() {
        let c = Config::for_profile(Profile::Prod);
        assert_eq!(
            Config::from_sources(Some(&c.to_toml()), &env(&[])).unwrap(),
            c
        );
    }
}
