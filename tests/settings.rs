//! The layers of the settings as the program sees them: a flag over its
//! `SECONDME_*` variable over the config file over the default, also after a
//! subcommand. An out-of-range `batch_size` shows which layer won: its error
//! comes before any connection is tried.

use std::path::PathBuf;
use std::process::Command;

/// A config file holding `text`, in a directory of its own.
fn config_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("secondme-settings-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("config.toml");
    std::fs::write(&file, text).expect("config file");
    file
}

/// Runs `secondme status` with only the given variables and arguments, against
/// a port where nothing listens; returns its stderr.
fn status(file: &PathBuf, vars: &[(&str, &str)], args: &[&str]) -> String {
    let dir = file.parent().expect("the file's directory");
    let out = Command::new(env!("CARGO_BIN_EXE_secondme"))
        .arg("--config")
        .arg(file)
        .arg("status")
        .args(args)
        .args(["--redis-url", "redis://127.0.0.1:1"])
        .env_clear()
        .env("HOME", dir)
        .envs(vars.iter().copied())
        .output()
        .expect("run secondme");
    assert!(!out.status.success(), "nothing listens on port 1");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const OUT_OF_RANGE: &str = "batch_size must be between 1 and 10000";

#[test]
fn a_flag_beats_its_variable_which_beats_the_file() {
    let bad_in_file = config_file("file", "batch_size = 0\n");
    let err = status(&bad_in_file, &[], &[]);
    assert!(err.contains(OUT_OF_RANGE), "the file is read: {err}");
    let err = status(&bad_in_file, &[("SECONDME_BATCH_SIZE", "5")], &[]);
    assert!(!err.contains(OUT_OF_RANGE), "the variable wins: {err}");
    let err = status(&bad_in_file, &[], &["--batch-size", "5"]);
    assert!(!err.contains(OUT_OF_RANGE), "the flag wins: {err}");

    let good_in_file = config_file("env", "batch_size = 5\n");
    let err = status(&good_in_file, &[("SECONDME_BATCH_SIZE", "0")], &[]);
    assert!(
        err.contains(OUT_OF_RANGE),
        "the variable beats the file: {err}"
    );
    let err = status(
        &good_in_file,
        &[("SECONDME_BATCH_SIZE", "0")],
        &["--batch-size", "7"],
    );
    assert!(
        !err.contains(OUT_OF_RANGE),
        "the flag beats the variable: {err}"
    );
    let err = status(&good_in_file, &[], &["--batch-size", "0"]);
    assert!(
        err.contains(OUT_OF_RANGE),
        "a flag after the subcommand counts: {err}"
    );
    if let Some(dir) = bad_in_file.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    if let Some(dir) = good_in_file.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
