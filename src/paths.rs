//! Where SecondMe keeps its files by default: the XDG base directories.
//!
//! Its own module so that `config` (default log and review files) and `seal`
//! (default key file) both depend on it instead of on each other. Only the
//! locations live here; the directories are created 0700 where a file is first
//! written (`private_file`), since most runs never write to some of them.

use std::path::PathBuf;

/// The name of SecondMe's directory under each XDG base directory.
const APP: &str = "secondme";

/// `$XDG_CONFIG_HOME/secondme` or `~/.config/secondme`: the config file and the session key.
pub fn config_dir() -> PathBuf {
    xdg_dir("XDG_CONFIG_HOME", ".config").join(APP)
}

/// `$XDG_STATE_HOME/secondme` or `~/.local/state/secondme`: the log and the review file.
pub fn state_dir() -> PathBuf {
    xdg_dir("XDG_STATE_HOME", ".local/state").join(APP)
}

/// `$XDG_DATA_HOME/secondme` or `~/.local/share/secondme`: data to keep across runs.
pub fn data_dir() -> PathBuf {
    xdg_dir("XDG_DATA_HOME", ".local/share").join(APP)
}

/// The default config file: `config_dir()/config.toml`.
pub fn config_file() -> PathBuf {
    config_dir().join("config.toml")
}

/// The default session key file: `config_dir()/session.key`.
pub fn key_file() -> PathBuf {
    config_dir().join("session.key")
}

/// The default log file: `state_dir()/secondme.log`.
pub fn log_file() -> PathBuf {
    state_dir().join("secondme.log")
}

/// The default review file: `state_dir()/review.jsonl`.
pub fn review_file() -> PathBuf {
    state_dir().join("review.jsonl")
}

/// `$var` when set and not empty (the XDG spec says to ignore an empty one),
/// else `$HOME/fallback`; without a home, under the temp directory so a
/// service account without one still runs.
fn xdg_dir(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join(fallback),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_lie_in_their_xdg_directories() {
        assert_eq!(config_file().parent(), Some(config_dir().as_path()));
        assert_eq!(key_file().parent(), Some(config_dir().as_path()));
        assert_eq!(log_file().parent(), Some(state_dir().as_path()));
        assert_eq!(review_file().parent(), Some(state_dir().as_path()));
        for dir in [config_dir(), state_dir(), data_dir()] {
            assert!(dir.ends_with(APP), "{}", dir.display());
        }
    }
}
