//! `tradestore init`: create a store.

use std::io::Write;

use anyhow::{Context, Result, bail};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use tradestore::config::CONFIG_FILE;
use tradestore::{Config, DB_FILE, Profile, SUBDIRS, Store};

use super::store::StoreDir;

/// Create a store: its directory, tradestore.toml, the database and its folders.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Create a store: the directory, tradestore.toml with the chosen profile's defaults, the \
database file (tradestore.redb) and the journal, archive and backups folders.

Running it again on an existing store changes nothing and is not an error. An existing \
tradestore.toml is never overwritten: if it names a different profile than --profile, init \
fails; edit or remove the file instead. Neither is an existing tradestore.redb that does not \
open as a store. A failed init removes what it created (the configuration file, the empty \
folders, the directory), leaving the directory as it was.")]
pub struct Args {
    #[command(flatten)]
    pub store: StoreDir,

    /// The configuration profile whose defaults tradestore.toml gets: dev (moderate
    /// cache), test (small cache, integrity check on open) or prod (large cache). Default:
    /// dev, or the profile of an existing tradestore.toml.
    #[arg(
        long,
        value_parser = PossibleValuesParser::new(["dev", "test", "prod"])
            .try_map(|s| s.parse::<Profile>())
    )]
    pub profile: Option<Profile>,
}

/// Runs `init`.
pub fn run(args: &Args) -> Result<()> {
    let dir = &args.store.dir;
    let mut created = Vec::new();
    let mut kept = Vec::new();

    let dir_existed = dir.is_dir();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if dir_existed {
        kept.push(format!("{}/", dir.display()));
    } else {
        created.push(format!("{}/", dir.display()));
    }

    let config_path = dir.join(CONFIG_FILE);
    let config_created = match tradestore::config::read_text_file(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?
    {
        Some(text) => {
            // Only the file itself: the environment does not change what the file says.
            let existing = Config::from_sources(Some(&text), &[])
                .with_context(|| format!("reading the existing {}", config_path.display()))?;
            if let Some(wanted) = args.profile
                && wanted != existing.profile
            {
                bail!(
                    "{} already exists with profile {}, not {wanted}; init never overwrites it: \
                     run init with --profile {}, or edit or remove the file",
                    config_path.display(),
                    existing.profile,
                    existing.profile
                );
            }
            kept.push(format!("{CONFIG_FILE} (profile {})", existing.profile));
            false
        }
        None => {
            let profile = args.profile.unwrap_or_default();
            write_new(&config_path, &Config::for_profile(profile).to_toml())?;
            created.push(format!("{CONFIG_FILE} (profile {profile})"));
            true
        }
    };

    let mut parts: Vec<(String, bool)> = vec![(DB_FILE.to_owned(), dir.join(DB_FILE).exists())];
    parts.extend(
        SUBDIRS
            .iter()
            .map(|s| (format!("{s}/"), dir.join(s).is_dir())),
    );
    let store = match Store::open_dir(dir) {
        Ok(store) => store,
        Err(e) => {
            // A failed init leaves the directory as it found it: what this run created
            // goes (folders only while empty), so that no half store is left for the other
            // commands to take for a damaged one; unless another process has the store
            // open (another init, say, which counts on the configuration this run wrote).
            if e.kind() != tradestore::ErrorKind::Busy {
                if config_created {
                    let _ = std::fs::remove_file(&config_path);
                }
                for (name, existed) in &parts {
                    if let Some(folder) = name.strip_suffix('/').filter(|_| !existed) {
                        let _ = std::fs::remove_dir(dir.join(folder));
                    }
                }
                if !dir_existed {
                    let _ = std::fs::remove_dir(dir);
                }
                if parts[0].1 {
                    // The file may be a store's, damaged, or something else under the name.
                    bail!(
                        "{} was there before init and does not open as a store ({}); init \
                         never replaces a database file: if it is not a store's, move it away \
                         or choose another --dir; if it is, restore the store from a backup or \
                         a dump (nothing was changed)",
                        dir.join(DB_FILE).display(),
                        e.message()
                    );
                }
            }
            return Err(
                anyhow::Error::new(e).context(format!("opening the store in {}", dir.display()))
            );
        }
    };
    for (name, existed) in parts {
        if existed {
            kept.push(name);
        } else {
            created.push(name);
        }
    }

    let mut out = std::io::stdout().lock();
    if created.is_empty() {
        writeln!(
            out,
            "store in {} already exists; nothing created",
            dir.display()
        )?;
    } else {
        writeln!(out, "initialised store in {}", dir.display())?;
    }
    for name in &created {
        writeln!(out, "  created  {name}")?;
    }
    for name in &kept {
        writeln!(out, "  kept     {name}")?;
    }
    let c = store.config();
    writeln!(
        out,
        "opened with profile {}, cache_size_mb {}, max_value_bytes {}, check_on_open {}",
        c.profile, c.cache_size_mb, c.max_value_bytes, c.check_on_open
    )?;
    Ok(())
}

/// Writes a file that must not exist yet (another `init` may race this one).
fn write_new(path: &std::path::Path, text: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}
