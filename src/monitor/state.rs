//! Periodic reads of the state keys, turned into dashboard snapshots; the first
//! read, and the first after an outage or a disconnection notice (a reconnect,
//! or a move to a new Sentinel primary), also loads conversation history (pub/sub
//! loses whatever was published while the link was down).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::connection::Con;
use redis::{PushInfo, PushKind};
use secondme_ui::{
    Author, ChatMessage, Connection, Contact, Conversation, Event, LogEntry, LogKind, Pause,
    SessionInfo, Snapshot, Stats,
};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;

use super::feed;
use crate::store::{self, snapshot};
use crate::{graph, schema};

/// How often the state keys are re-read.
const REFRESH: Duration = Duration::from_secs(2);
/// Contacts whose history is loaded on a full read (the most recent ones).
const HISTORY_CONTACTS: usize = 200;
/// How often contact names are re-read from the graph between full reads: names
/// change rarely, and only through imports.
const NAMES_REFRESH: Duration = Duration::from_secs(30);

/// Most contacts remembered from the live feed for the snapshot to look at.
const LIVE_CONTACTS: usize = 1000;

/// Contacts seen on the live feed (a gateway or worker not ours may publish for
/// contacts no key lists), so that the snapshot reads their pauses and counters too.
/// Bounded: the oldest seen is forgotten first.
#[derive(Clone, Default)]
pub struct LiveContacts(Arc<Mutex<(VecDeque<String>, HashSet<String>)>>);

impl LiveContacts {
    /// Remembers `contact_id` (the kill switch's `ALL` is no contact).
    pub fn saw(&self, contact_id: &str) {
        if contact_id == schema::PAUSE_ALL_CONTACT {
            return;
        }
        // A poisoned lock only means a panic elsewhere; the set is still usable.
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (order, set) = &mut *guard;
        if set.contains(contact_id) {
            return;
        }
        if order.len() >= LIVE_CONTACTS
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        order.push_back(contact_id.to_owned());
        set.insert(contact_id.to_owned());
    }

    /// The contacts remembered.
    pub fn ids(&self) -> Vec<String> {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.iter().cloned().collect()
    }
}

/// Asks [`poll`] for a full read, history included, at once: told of a
/// disconnection, pub/sub may have lost what was published meanwhile.
#[derive(Clone, Default)]
pub struct Resync(Arc<Notify>);

impl Resync {
    /// Asks for a full read when `push` tells of a disconnection. The read waits
    /// for the connection, which subscribes again before it answers.
    pub fn on_push(&self, push: &PushInfo) {
        if push.kind == PushKind::Disconnection {
            // Several notices before the read are one read.
            self.0.notify_one();
        }
    }
}

/// Re-reads the state until the receiver goes away; at once, history included,
/// when `resync` asks.
pub async fn poll(
    mut con: Con,
    user_id: String,
    live: LiveContacts,
    resync: Resync,
    tx: UnboundedSender<Event>,
) {
    let mut need_history = true;
    let mut last_answered: Option<(Instant, i64)> = None;
    let mut names: HashMap<String, String> = HashMap::new();
    let mut names_read: Option<Instant> = None;
    let mut graph_seen: Option<bool> = None;
    let mut dead_seen: Option<u64> = None;
    let mut qr_seen: Option<String> = None;
    let mut dialects_logged = false;
    let mut odd_seen: Vec<String> = Vec::new();
    loop {
        let started = Instant::now();
        let ping: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut con).await;
        let event = match ping {
            Ok(_) => {
                let rtt_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
                if tx
                    .send(Event::Connection(Connection::Connected { rtt_ms }))
                    .is_err()
                {
                    return;
                }
                if need_history || names_read.is_none_or(|at| at.elapsed() >= NAMES_REFRESH) {
                    names_read = Some(Instant::now());
                    let available = graph::available(&mut con).await;
                    if graph_seen != Some(available) {
                        graph_seen = Some(available);
                        if tx.send(graph_notice(available)).is_err() {
                            return;
                        }
                    }
                    if let Some(fresh) = contact_names(&mut con, available).await {
                        names = fresh;
                    }
                    // Names other programs keep (the original gateway's
                    // `CONTACTS:list`) fill in where the graph has none.
                    match store::dialects::contact_names(&mut con).await {
                        Ok(listed) => {
                            for (id, name) in listed {
                                names.entry(id).or_insert(name);
                            }
                        }
                        Err(e) => {
                            tracing::debug!("{} not read: {e}", schema::dialect::contacts_list())
                        }
                    }
                }
                let live_ids = live.ids();
                let reading = read(
                    &mut con,
                    &user_id,
                    &live_ids,
                    need_history,
                    &mut last_answered,
                    &names,
                );
                match reading.await {
                    Ok((snap, odd_keys, gateway)) => {
                        if need_history && !dialects_logged {
                            dialects_logged = true;
                            for line in store::dialects::detect(&mut con, &user_id).await {
                                if tx.send(info(format!("reading: {line}"))).is_err() {
                                    return;
                                }
                            }
                        }
                        need_history = false;
                        if odd_keys != odd_seen {
                            for key in odd_keys.iter().filter(|k| !odd_seen.contains(k)) {
                                let text = format!("cannot read {key} (another program's?)");
                                if tx.send(info(text)).is_err() {
                                    return;
                                }
                            }
                            odd_seen = odd_keys;
                        }
                        if tx.send(Event::GatewaySession(gateway)).is_err() {
                            return;
                        }
                        let dead = snap.stats.dead_letters;
                        if let Some(before) = dead_seen.filter(|b| dead > *b) {
                            for ev in dead_letter_notices(&mut con, dead - before).await {
                                if tx.send(ev).is_err() {
                                    return;
                                }
                            }
                        }
                        dead_seen = Some(dead);
                        if snap.session.is_none()
                            && let Some(qr) = stored_qr(&mut con, &user_id, &mut qr_seen).await
                            && tx.send(qr).is_err()
                        {
                            return;
                        }
                        Event::Snapshot(snap)
                    }
                    Err(e) => disconnected(format!("{e:#}")),
                }
            }
            Err(e) => {
                need_history = true;
                disconnected(e.to_string())
            }
        };
        if tx.send(event).is_err() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(REFRESH.saturating_sub(started.elapsed())) => {}
            () = resync.0.notified() => need_history = true,
        }
    }
}

/// The login code stored in `QR:{userId}` when it is one this loop has not shown
/// yet (a dashboard started after its publish would otherwise wait for the next).
async fn stored_qr(con: &mut Con, user_id: &str, seen: &mut Option<String>) -> Option<Event> {
    let key = schema::qr_key(user_id);
    let (payload, ttl_ms): (Option<String>, i64) = redis::pipe()
        .get(&key)
        .pttl(&key)
        .query_async(con)
        .await
        .ok()?;
    let payload = payload?;
    if seen.as_deref() == Some(payload.as_str()) || ttl_ms <= 0 {
        return None;
    }
    *seen = Some(payload.clone());
    match feed::qr(&payload).ok()? {
        Event::QrEvent { payload, .. } => Some(Event::QrEvent {
            payload,
            expires_in_s: u32::try_from((ttl_ms + 999) / 1000).unwrap_or(u32::MAX),
        }),
        _ => None,
    }
}

/// Display names from the graph; `None` (names stay as they were) when the server
/// has no FalkorDB or the graph cannot be read, which must not disturb the dashboard.
async fn contact_names(con: &mut Con, available: bool) -> Option<HashMap<String, String>> {
    if !available {
        return None;
    }
    match graph::contact_names(con).await {
        Ok(names) => Some(names),
        Err(e) => {
            tracing::debug!("contact names unavailable: {e}");
            None
        }
    }
}

/// Most dead letters listed one by one after a refresh; the rest are counted.
const DEAD_LETTERS_SHOWN: u64 = 5;

/// Event-log lines for the `new` newest dead letters, with their reasons.
async fn dead_letter_notices(con: &mut Con, new: u64) -> Vec<Event> {
    let shown = new.min(DEAD_LETTERS_SHOWN);
    let reply: redis::RedisResult<redis::streams::StreamRangeReply> = redis::cmd("XREVRANGE")
        .arg(schema::queue_deadletter())
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(shown)
        .query_async(con)
        .await;
    let mut reasons: Vec<String> = match reply {
        Ok(r) => r
            .ids
            .iter()
            .map(|e| {
                e.get::<String>(schema::deadletter_fields::REASON)
                    .unwrap_or_else(|| "no reason given".into())
            })
            .collect(),
        Err(e) => vec![format!("(cannot read QUEUE:deadletter: {e})")],
    };
    reasons.reverse();
    if new > shown {
        reasons.push(format!("... and {} more in QUEUE:deadletter", new - shown));
    }
    reasons
        .into_iter()
        .map(|reason| {
            Event::Log(LogEntry {
                at_ms: store::now_ms(),
                kind: LogKind::DeadLetter,
                text: format!("dead letter: {reason}"),
            })
        })
        .collect()
}

/// Tells the operator whether personas come from the graph or the shipped set.
fn graph_notice(available: bool) -> Event {
    Event::Log(LogEntry {
        at_ms: store::now_ms(),
        kind: LogKind::Info,
        text: if available {
            "persona graph (FalkorDB) available".into()
        } else {
            "FalkorDB not available: replies use the shipped personas".into()
        },
    })
}

fn disconnected(error: String) -> Event {
    Event::Connection(Connection::Disconnected {
        since_ms: store::now_ms(),
        retrying: true,
        last_error: error,
    })
}

/// A line for the event log.
fn info(text: String) -> Event {
    Event::Log(LogEntry {
        at_ms: store::now_ms(),
        kind: LogKind::Info,
        text,
    })
}

/// Another gateway's session in a few words: its state, when it expires, whether
/// it needs a new login.
fn gateway_text(g: &store::dialects::GatewaySession, now: i64) -> String {
    let mut text = g.state.clone();
    if let Some(at) = g.estimated_expiry_at {
        let left = secondme_ui::format::remaining_secs(at, now);
        text.push_str(&format!(
            ", expires in {}",
            secondme_ui::format::coarse_duration(left)
        ));
    }
    if g.needs_refresh {
        text.push_str(", needs a new login");
    }
    text
}

/// The dashboard's snapshot, the keys that could not be read, and another
/// gateway's session described.
type Read = (Snapshot, Vec<String>, Option<String>);

async fn read(
    con: &mut Con,
    user_id: &str,
    live: &[String],
    with_history: bool,
    last_answered: &mut Option<(Instant, i64)>,
    names: &HashMap<String, String>,
) -> anyhow::Result<Read> {
    let snap = snapshot::read_with(con, user_id, live).await?;
    let odd_keys = snap.odd_keys.clone();
    let gateway = snap
        .gateway_session
        .as_ref()
        .map(|g| gateway_text(g, snap.now));
    let answered = snap.stats.get("answered").copied().unwrap_or(0);
    let now = Instant::now();
    let throughput_per_s = match *last_answered {
        Some((at, before)) if now > at => {
            (answered - before).max(0) as f64 / (now - at).as_secs_f64()
        }
        _ => 0.0,
    };
    *last_answered = Some((now, answered));
    let contacts = contacts(&snap, names);
    let mut conversations = HashMap::new();
    if with_history {
        let mut recent: Vec<&Contact> = contacts.iter().collect();
        recent.sort_by_key(|c| std::cmp::Reverse(c.last_activity_ms));
        let ids: Vec<String> = recent
            .into_iter()
            .take(HISTORY_CONTACTS)
            .map(|c| c.id.clone())
            .collect();
        for (id, history) in snapshot::histories(con, &ids, schema::HISTORY_LEN).await? {
            conversations.insert(id, conversation(history));
        }
    }
    let ui_snapshot = Snapshot {
        contacts,
        stats: Stats {
            queue_len: snap.queue_len,
            queue_cap: schema::QUEUE_MESSAGES_CAP as u64,
            pending: snap.pending,
            dead_letters: snap.dead_letters,
            throughput_per_s,
            subscribers: snap
                .subscribers
                .iter()
                .map(|(_, n)| (*n).max(0) as u64)
                .sum(),
            ..Stats::default()
        },
        session: snap.session.map(|s| SessionInfo {
            connected_at_ms: s.connected_at,
            expires_at_ms: s.expires_at,
        }),
        kill_switch: snap.kill_switch,
        conversations,
    };
    Ok((ui_snapshot, odd_keys, gateway))
}

fn contacts(snap: &snapshot::Snapshot, names: &HashMap<String, String>) -> Vec<Contact> {
    let enabled: HashSet<&str> = snap.enabled.iter().map(String::as_str).collect();
    let mut by_id: HashMap<String, Contact> = HashMap::new();
    fn entry<'a>(
        by_id: &'a mut HashMap<String, Contact>,
        enabled: &HashSet<&str>,
        id: &str,
    ) -> &'a mut Contact {
        by_id.entry(id.to_owned()).or_insert_with(|| Contact {
            enabled: enabled.contains(id),
            ..Contact::new(id)
        })
    }
    for (id, at) in &snap.contacts {
        entry(&mut by_id, &enabled, id).last_activity_ms = *at;
    }
    for id in &snap.enabled {
        entry(&mut by_id, &enabled, id);
    }
    for p in &snap.paused {
        entry(&mut by_id, &enabled, &p.contact_id).pause = Some(Pause {
            // Another program's pause without expiry holds until resumed.
            expires_at_ms: if p.until_resumed {
                None
            } else {
                p.expires_at.or(Some(snap.now + p.remaining_ms))
            },
            reason: feed::ui_reason(&p.reason),
        });
    }
    for c in &snap.counters {
        entry(&mut by_id, &enabled, &c.contact_id).rate_count =
            u32::try_from(c.count).unwrap_or(u32::MAX);
    }
    by_id
        .into_values()
        .map(|mut c| {
            c.name = names.get(&c.id).cloned();
            c
        })
        .collect()
}

fn conversation(history: Vec<schema::MessageEvent>) -> Conversation {
    let mut conv = Conversation::default();
    for m in history {
        conv.push(ChatMessage {
            text: feed::message_text(m.content, m.media.as_ref()),
            id: m.message_id,
            timestamp_ms: m.timestamp,
            author: match (m.from_me, m.bot_sent) {
                (true, _) => Author::Person,
                (false, true) => Author::Twin,
                (false, false) => Author::Contact,
            },
        });
    }
    conv
}
