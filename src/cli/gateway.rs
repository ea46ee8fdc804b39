//! The WhatsApp gateway's subcommands: `gateway` (headless), `login` (codes in
//! this terminal) and `logout`, and the gateway run beside the control room.

use anyhow::Result;
use secondme::config::Config;

#[cfg(feature = "whatsapp")]
use super::common::{connect, init_stderr_log, interrupt_term_or_hangup};

#[cfg(not(feature = "whatsapp"))]
const NOT_BUILT: &str = "this secondme was built without WhatsApp (cargo feature `whatsapp`)";

/// `secondme gateway`.
#[cfg(not(feature = "whatsapp"))]
pub(super) async fn run(_config: Config) -> Result<()> {
    anyhow::bail!(NOT_BUILT)
}

/// `secondme login`.
#[cfg(not(feature = "whatsapp"))]
pub(super) async fn login(_config: Config, _phone: Option<&str>) -> Result<()> {
    anyhow::bail!(NOT_BUILT)
}

/// `secondme logout`.
#[cfg(not(feature = "whatsapp"))]
pub(super) async fn logout(_config: Config) -> Result<()> {
    anyhow::bail!(NOT_BUILT)
}

/// Exit status of `secondme gateway` when another instance took over the device.
#[cfg(feature = "whatsapp")]
const REPLACED_EXIT: i32 = 3;

/// `secondme gateway`: runs until SIGINT/SIGTERM/SIGHUP or another instance takes over.
#[cfg(feature = "whatsapp")]
pub(super) async fn run(config: Config) -> Result<()> {
    use secondme::bridge::whatsapp::gateway::Exit;
    use secondme::bridge::whatsapp::link::LinkEvent;
    init_stderr_log();
    let con = connect(&config).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        interrupt_term_or_hangup().await;
        let _ = stop_tx.send(true);
    });
    // The state goes to the log (journald under systemd) as it changes.
    let (tap, mut events) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                LinkEvent::Qr { .. } => tracing::info!(
                    "not logged in: a login code is up (scan it in the control room, or run `secondme login`)"
                ),
                other => tracing::info!("whatsapp: {}", describe(&other)),
            }
        }
    });
    let exit =
        secondme::bridge::whatsapp::setup::run(&config, con, stop_rx, None, false, Some(tap))
            .await?;
    if exit == Exit::Replaced {
        // Its own exit status, so systemd (RestartPreventExitStatus=3) does not restart
        // it to fight the other instance.
        eprintln!("secondme: another program logged in with this device; stopped");
        std::process::exit(REPLACED_EXIT);
    }
    Ok(())
}

/// `secondme login`: shows the codes here until the phone links the device.
#[cfg(feature = "whatsapp")]
pub(super) async fn login(config: Config, phone: Option<&str>) -> Result<()> {
    use secondme::bridge::whatsapp::gateway::Exit;
    use secondme::bridge::whatsapp::link::LinkEvent;
    let con = connect(&config).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        interrupt_term_or_hangup().await;
        let _ = stop_tx.send(true);
    });
    let (tap, mut events) = tokio::sync::mpsc::unbounded_channel();
    let printer = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                LinkEvent::Qr { code, expires_in } => print_qr(&code, expires_in),
                other => println!("{}", describe(&other)),
            }
        }
    });
    println!("Connecting to WhatsApp...");
    let exit =
        secondme::bridge::whatsapp::setup::run(&config, con, stop_rx, phone, true, Some(tap)).await;
    printer.abort();
    match exit? {
        Exit::LoggedIn => {
            println!(
                "Logged in. Run `secondme gateway` (or the control room with gateway = \"whatsapp\")."
            );
            Ok(())
        }
        Exit::Replaced => anyhow::bail!("another program logged in with this device"),
        Exit::Stopped => anyhow::bail!("stopped before the phone linked this device"),
    }
}

/// `secondme logout`.
#[cfg(feature = "whatsapp")]
pub(super) async fn logout(config: Config) -> Result<()> {
    let con = connect(&config).await?;
    let told =
        secondme::bridge::whatsapp::setup::logout(&config, con, std::time::Duration::from_secs(20))
            .await?;
    if told {
        println!("Unlinked from WhatsApp; the device's keys are deleted.");
    } else {
        println!(
            "The device's keys are deleted. WhatsApp could not be told: remove \"SecondMe\" under Linked devices on the phone."
        );
    }
    Ok(())
}

/// One line about a connection event, for a terminal or the log (no secrets).
#[cfg(feature = "whatsapp")]
fn describe(event: &secondme::bridge::whatsapp::link::LinkEvent) -> String {
    use secondme::bridge::whatsapp::link::LinkEvent;
    let clean = |s: &str| secondme_ui::sanitize::clean(s, 200);
    let in_secs = |at: i64| (at - secondme::store::now_ms()).max(0) / 1000;
    match event {
        LinkEvent::Qr { expires_in, .. } => format!("login code, valid {expires_in}s"),
        LinkEvent::PairCode { code, expires_in } => format!(
            "Pair code: {}  (on the phone: WhatsApp > Linked devices > Link a device > Link with phone number instead; valid {expires_in}s)",
            clean(code)
        ),
        LinkEvent::PairCodeFailed { reason } => format!("pair code failed: {}", clean(reason)),
        LinkEvent::CodesExhausted => {
            "no code was scanned and WhatsApp gave out its last one; run `secondme login` again"
                .into()
        }
        LinkEvent::Connected { name, .. } => format!("connected as {}", clean(name)),
        LinkEvent::Reconnecting {
            reason,
            next_try_ms,
        } => {
            format!(
                "reconnecting: {} (next try in {}s)",
                clean(reason),
                in_secs(*next_try_ms)
            )
        }
        LinkEvent::NoNetwork {
            reason,
            next_try_ms,
        } => {
            format!(
                "no network: {} (next try in {}s)",
                clean(reason),
                in_secs(*next_try_ms)
            )
        }
        LinkEvent::LoggedOut { reason } => format!("logged out: {}; log in again", clean(reason)),
        LinkEvent::StreamReplaced => "replaced by another instance; stopping".into(),
        LinkEvent::TemporaryBan { until_ms, reason } => format!(
            "temporarily banned by WhatsApp for {}s more: {}",
            in_secs(*until_ms),
            clean(reason)
        ),
    }
}

/// Draws a login code as blocks (black on white, with its quiet zone).
#[cfg(feature = "whatsapp")]
fn print_qr(code: &str, expires_in: u32) {
    match secondme_ui::widgets::qr::render_lines(code) {
        Ok(lines) => {
            println!();
            // Black modules on an explicit white background: a terminal's own
            // colours (light on dark) would show the code inverted, which phones misread.
            for line in lines {
                println!("\x1b[30;107m{line}\x1b[0m");
            }
            println!(
                "Scan with WhatsApp on the phone: Settings > Linked devices > Link a device (valid {expires_in}s)"
            );
        }
        Err(e) => println!("cannot draw the login code: {e}"),
    }
}

/// Runs the gateway beside the control room (setting `gateway = "whatsapp"`),
/// until `stop`; its state reaches the screen through `GATEWAY:{userId}`.
#[cfg(feature = "whatsapp")]
pub(super) fn spawn_beside_control_room(
    config: &Config,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let config = config.clone();
    tokio::spawn(async move {
        let result = async {
            let con = connect(&config).await?;
            secondme::bridge::whatsapp::setup::run(&config, con, stop, None, false, None).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!("whatsapp gateway stopped: {e:#}");
        }
    })
}

/// Without the feature, the setting is refused at start.
#[cfg(not(feature = "whatsapp"))]
pub(super) fn spawn_beside_control_room(
    _config: &Config,
    _stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tracing::warn!("{NOT_BUILT}: gateway = \"whatsapp\" ignored");
    tokio::spawn(async {})
}
