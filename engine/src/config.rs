//! Configuration: a profile's defaults, then `tradestore.toml` in the store's directory,
//! then `TRADESTORE_*` environment variables, each layer overriding the one before.
//!
//! | key | env | dev | test | prod | meaning |
//! |---|---|---|---|---|---|
//! | `profile` | `TRADESTORE_PROFILE` | | | | which defaults apply: `dev`, `test` or `prod` |
//! | `cache_size_mb` | `TRADESTORE_CACHE_SIZE_MB` | 64 | 16 | 1024 | redb page cache, MiB (1..=1048576) |
//! | `max_value_bytes` | `TRADESTORE_MAX_VALUE_BYTES` | 65536 | 65536 | 65536 | largest encoded record accepted, bytes |
//! | `check_on_open` | `TRADESTORE_CHECK_ON_OPEN` | false | true | false | run redb's full integrity check when opening |
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

/// Environment variables with the `TRADESTORE_` prefix that belong to the command-line tool,
/// not to the store's configuration.
pub const TOOL_ENV_VARS: &[&str] = &["TRADESTORE_DIR", "TRADESTORE_LOG"];

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
    /// Largest encoded record accepted, in bytes.
    pub max_value_bytes: u64,
    /// Run redb's integrity check on open.
    pub check_on_open: bool,
}

/// The file's shape: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    profile: Option<Profile>,
    cache_size_mb: Option<u64>,
    max_value_bytes: Option<u64>,
    check_on_open: Option<bool>,
}

impl Default for Config {
    fn default() -> Config {
        Config::for_profile(Profile::Dev)
    }
}

impl Config {
    /// The defaults of a profile.
    pub fn for_profile(profile: Profile) -> Config {
        match profile {
            Profile::Dev => Config {
                profile,
                cache_size_mb: 64,
                max_value_bytes: 65_536,
                check_on_open: false,
            },
            Profile::Test => Config {
                profile,
                cache_size_mb: 16,
                max_value_bytes: 65_536,
                check_on_open: true,
            },
            Profile::Prod => Config {
                profile,
                cache_size_mb: 1024,
                max_value_bytes: 65_536,
                check_on_open: false,
            },
        }
    }

    /// Loads the configuration of the store in `dir`: the profile's defaults, overridden by
    /// `dir/tradestore.toml` if it exists, overridden by `TRADESTORE_*` variables.
    pub fn load(dir: &Path) -> Result<Config> {
        let path = dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        let vars: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("TRADESTORE_"))
            .collect();
        Config::build(&path.display().to_string(), text.as_deref(), &vars)
    }

    /// Builds a configuration from a TOML text (if any) and environment variables (name,
    /// value), which is what [`Config::load`] does after reading them.
    pub fn from_sources(toml_text: Option<&str>, env: &[(String, String)]) -> Result<Config> {
        Config::build(CONFIG_FILE, toml_text, env)
    }

    fn build(file: &str, toml_text: Option<&str>, env: &[(String, String)]) -> Result<Config> {
        let file: FileConfig = match toml_text {
            Some(t) => toml::from_str(t)
                .map_err(|e| Error::config(format!("in {file}: {}", e.to_string().trim())))?,
            None => FileConfig::default(),
        };
        let env_profile = env
            .iter()
            .find(|(k, _)| k == "TRADESTORE_PROFILE")
            .map(|(_, v)| v.parse::<Profile>())
            .transpose()?;
        let mut c = Config::for_profile(env_profile.or(file.profile).unwrap_or_default());
        if let Some(v) = file.cache_size_mb {
            c.cache_size_mb = v;
        }
        if let Some(v) = file.max_value_bytes {
            c.max_value_bytes = v;
        }
        if let Some(v) = file.check_on_open {
            c.check_on_open = v;
        }
        for (key, value) in env {
            let parse_u64 = || {
                value.trim().parse::<u64>().map_err(|_| {
                    Error::config(format!("{key}={value:?} is not a non-negative integer"))
                })
            };
            match key.as_str() {
                "TRADESTORE_PROFILE" => {}
                "TRADESTORE_CACHE_SIZE_MB" => c.cache_size_mb = parse_u64()?,
                "TRADESTORE_MAX_VALUE_BYTES" => c.max_value_bytes = parse_u64()?,
                "TRADESTORE_CHECK_ON_OPEN" => {
                    c.check_on_open = match value.trim() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(Error::config(format!(
                                "{key}={value:?} is not true/false"
                            )));
                        }
                    }
                }
                k if TOOL_ENV_VARS.contains(&k) => {}
                _ => {
                    return Err(Error::config(format!(
                        "unknown environment variable {key}; the configuration variables are TRADESTORE_PROFILE, TRADESTORE_CACHE_SIZE_MB, TRADESTORE_MAX_VALUE_BYTES, TRADESTORE_CHECK_ON_OPEN"
                    )));
                }
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if !(1..=1_048_576).contains(&self.cache_size_mb) {
            return Err(Error::config(format!(
                "cache_size_mb = {} is out of range 1..=1048576",
                self.cache_size_mb
            )));
        }
        if !(256..=16 << 20).contains(&self.max_value_bytes) {
            return Err(Error::config(format!(
                "max_value_bytes = {} is out of range 256..=16777216",
                self.max_value_bytes
            )));
        }
        Ok(())
    }

    /// The configuration as the TOML text `init` writes.
    pub fn to_toml(&self) -> String {
        format!(
            "# tradestore configuration; every key is optional and overrides the profile's default.\n\
             profile = \"{}\"\ncache_size_mb = {}\nmax_value_bytes = {}\ncheck_on_open = {}\n",
            self.profile, self.cache_size_mb, self.max_value_bytes, self.check_on_open
        )
    }
}

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
    fn written_toml_loads_back() {
        let c = Config::for_profile(Profile::Prod);
        assert_eq!(
            Config::from_sources(Some(&c.to_toml()), &env(&[])).unwrap(),
            c
        );
    }
}
