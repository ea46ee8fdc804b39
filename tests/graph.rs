//! The FalkorDB graph against a real redis-server with the module: import,
//! persona resolution, contact context, hostile data, and the CLI.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::TestDir;
use redis::AsyncCommands;
use secondme::connection::Con;
use secondme::graph::{self, ContactEntry, ContactNode, GraphError, GraphFile, KnownPerson, Rule};
use secondme::reply::input::ContactPerson;
use secondme::server::{self, GraphModule, RedisServer};
use secondme::{connection, schema, store};

/// A server, a connection to it, and a directory for the test's files.
struct Graph {
    server: RedisServer,
    con: Con,
    dir: TestDir,
}

/// A server with FalkorDB. The project's setup always installs the module, so
/// its absence is a failure, not a reason to skip.
async fn with_module() -> Graph {
    let binary = server::find_binary().expect("a redis-server (run scripts/setup.sh)");
    let server = RedisServer::start(binary, GraphModule::WhenFound).expect("start redis-server");
    assert!(
        server.has_falkordb(),
        "falkordb.so was not found next to the redis-server binary: run scripts/setup.sh \
         (or set SECONDME_FALKORDB_MODULE)"
    );
    connect(server).await
}

/// A server without any module.
async fn without_module() -> Graph {
    let binary = server::find_binary().expect("a redis-server (run scripts/setup.sh)");
    connect(RedisServer::start(binary, GraphModule::Without).expect("start redis-server")).await
}

async fn connect(server: RedisServer) -> Graph {
    let client = connection::open_client(&server.url()).expect("client");
    let con = connection::manager(&client, None).await.expect("connect");
    Graph {
        server,
        con,
        dir: TestDir::new("graph"),
    }
}

/// A worker on `g` with the persona engine; `sleep_hours` as the setting says.
fn spawn_worker(
    g: &Graph,
    consumer: &str,
    sleep_hours: Option<&str>,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<anyhow::Result<secondme::worker::WorkerStatus>>,
) {
    let dir = g.dir.join(consumer);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("config.toml"), "").expect("config");
    let config = secondme::config::Config::load(
        Some(&dir.join("config.toml")),
        secondme::config::Overrides {
            redis_url: Some(g.server.url()),
            consumer: Some(consumer.into()),
            review_file: Some(dir.join("review.jsonl")),
            sleep_hours: sleep_hours.map(str::to_owned),
            ..Default::default()
        },
    )
    .expect("config");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(async move {
        secondme::worker::run_worker(
            &config,
            secondme::reply::persona_engine::PersonaEngine::default(),
            stop_rx,
        )
        .await
    });
    (stop_tx, worker)
}

/// The account owner of assets/graph.json (and the default `user_id`).
const USER: &str = "user-1";

fn shipped() -> GraphFile {
    GraphFile::shipped().expect("assets/graph.json is valid")
}

fn contact(id: &str, name: Option<&str>, relationship: &str) -> ContactEntry {
    ContactEntry {
        contact: ContactNode {
            id: id.into(),
            phone_number: None,
            name: name.map(str::to_owned),
            relationship_type: relationship.into(),
            bot_enabled: false,
            assigned_persona: None,
        },
        knows: Vec::new(),
        mentioned: Vec::new(),
    }
}

/// (label or type, count) of everything in the graph, for comparisons.
async fn census(con: &mut Con) -> (Vec<(String, u64)>, Vec<(String, u64)>) {
    let c = graph::counts(con).await.expect("counts");
    (
        c.nodes.into_iter().collect(),
        c.relationships.into_iter().collect(),
    )
}

#[tokio::test]
async fn import_loads_every_node_and_edge() {
    let mut g = with_module().await;
    assert!(graph::available(&mut g.con).await);
    let summary = graph::import(&mut g.con, &shipped()).await.expect("import");
    assert_eq!(summary.user, "user-1");
    assert_eq!(summary.personas, ["casual", "professional", "family"]);
    assert_eq!(
        summary.contacts,
        ["mom", "alex", "sam-work", "jo", "spam-bot"]
    );
    assert_eq!(summary.nodes_created, 17);
    assert_eq!(summary.relationships_created, 16);

    let counts = graph::counts(&mut g.con).await.expect("counts");
    for (label, n) in [
        ("User", 1),
        ("Persona", 3),
        ("Contact", 5),
        ("Person", 2),
        ("Company", 1),
        ("Topic", 5),
    ] {
        assert_eq!(counts.node(label), n, "{label}: {counts:?}");
    }
    for (kind, n) in [
        ("HAS_PERSONA", 3),
        ("HAS_CONTACT", 5),
        ("KNOWS", 2),
        ("WORKS_AT", 1),
        ("MENTIONED", 5),
    ] {
        assert_eq!(counts.relationship(kind), n, "{kind}: {counts:?}");
    }

    let user = graph::user(&mut g.con, USER)
        .await
        .expect("user")
        .expect("a user");
    assert_eq!(user.default_persona, "casual");
    assert_eq!(user.sleep_hours_start.as_deref(), Some("23:00"));
    let contacts = graph::contacts(&mut g.con).await.expect("contacts");
    let sam = contacts.iter().find(|c| c.id == "sam-work").expect("sam");
    assert_eq!(sam.name.as_deref(), Some("Sam Carter"));
    assert_eq!(sam.assigned_persona.as_deref(), Some("professional"));
    assert!(sam.bot_enabled);
    let spam = contacts.iter().find(|c| c.id == "spam-bot").expect("spam");
    assert!(!spam.bot_enabled);
    assert_eq!(spam.name, None);
    assert_eq!(spam.relationship_type, "unknown");
}

#[tokio::test]
async fn import_is_idempotent() {
    let mut g = with_module().await;
    graph::import(&mut g.con, &shipped())
        .await
        .expect("first import");
    let before = census(&mut g.con).await;
    let again = graph::import(&mut g.con, &shipped())
        .await
        .expect("second import");
    assert_eq!(again.nodes_created, 0, "{again:?}");
    assert_eq!(again.relationships_created, 0, "{again:?}");
    assert_eq!(census(&mut g.con).await, before);

    // An edited file updates in place: a dropped assignment is removed.
    let mut edited = shipped();
    for e in &mut edited.contacts {
        e.contact.assigned_persona = None;
    }
    graph::import(&mut g.con, &edited)
        .await
        .expect("edited import");
    assert_eq!(census(&mut g.con).await, before);
    let r = graph::resolve_persona(&mut g.con, USER, "sam-work")
        .await
        .expect("resolve");
    assert_eq!(r.rule, Rule::ByRelationship);
}

#[tokio::test]
async fn persona_resolution_follows_the_three_rules() {
    let mut g = with_module().await;
    // Before any import nothing can resolve, and the error says what to do.
    let err = graph::resolve_persona(&mut g.con, USER, "mom")
        .await
        .expect_err("empty graph");
    assert!(matches!(err, GraphError::NoUser), "{err}");
    assert!(err.to_string().contains("persona import"), "{err}");

    let mut file = shipped();
    // A friend with an assignment: only the assignment explains `professional`.
    let mut boss = contact("boss-friend", Some("Kim"), "friend");
    boss.contact.assigned_persona = Some("professional".into());
    file.contacts.push(boss);
    graph::import(&mut g.con, &file).await.expect("import");

    let cases = [
        ("sam-work", "professional", Rule::Assigned),
        ("boss-friend", "professional", Rule::Assigned),
        ("mom", "family", Rule::ByRelationship),
        ("alex", "casual", Rule::ByRelationship),
        ("jo", "casual", Rule::ByRelationship),
        ("spam-bot", "casual", Rule::UserDefault),
        ("never-seen", "casual", Rule::UserDefault),
    ];
    for (id, persona, rule) in cases {
        let r = graph::resolve_persona(&mut g.con, USER, id)
            .await
            .expect("resolve");
        assert_eq!((r.persona_id.as_str(), r.rule), (persona, rule), "{id}");
    }
}

#[tokio::test]
async fn persona_style_matches_the_import() {
    let mut g = with_module().await;
    let file = shipped();
    graph::import(&mut g.con, &file).await.expect("import");
    for p in &file.personas {
        let style = graph::persona_style(&mut g.con, &p.id)
            .await
            .expect("style");
        assert_eq!(style, p.style, "{}", p.id);
        // The graph and the shipped set agree, so the cache is the same either way.
        let shipped = store::persona::shipped_by_id(&p.id).expect("shipped persona");
        assert_eq!(style, shipped.style, "{}", p.id);
    }
    let listed = graph::personas(&mut g.con).await.expect("personas");
    let ids: Vec<&str> = listed.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["casual", "family", "professional"]);
    for p in &listed {
        let f = file
            .personas
            .iter()
            .find(|f| f.id == p.id)
            .expect("in file");
        assert_eq!(
            (&p.name, &p.applicable_to, &p.style),
            (&f.name, &f.applicable_to, &f.style)
        );
    }
    let err = graph::persona_style(&mut g.con, "pirate")
        .await
        .expect_err("unknown");
    assert!(
        matches!(
            err,
            GraphError::NotFound {
                kind: "persona",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn contact_context_has_people_companies_and_topics() {
    let mut g = with_module().await;
    graph::import(&mut g.con, &shipped()).await.expect("import");
    let sam = graph::contact_context(&mut g.con, USER, "sam-work")
        .await
        .expect("context")
        .expect("sam is known");
    assert_eq!(sam.name.as_deref(), Some("Sam Carter"));
    assert_eq!(sam.relationship_type, "colleague");
    assert_eq!(
        sam.people,
        [ContactPerson {
            name: "Priya Natarajan".into(),
            occupation: Some("Finance lead".into()),
            company: Some("Northwind Logistics".into()),
        }]
    );
    assert_eq!(sam.topics, ["Q3 budget", "quarterly review"]);

    let mom = graph::contact_context(&mut g.con, USER, "mom")
        .await
        .expect("context")
        .expect("mom");
    assert_eq!(mom.people.len(), 1);
    assert_eq!(mom.people[0].company, None);
    assert_eq!(mom.topics, ["Sunday lunch"]);

    let jo = graph::contact_context(&mut g.con, USER, "jo")
        .await
        .expect("context")
        .expect("jo");
    assert!(jo.people.is_empty() && jo.topics.is_empty(), "{jo:?}");
    assert_eq!(
        graph::contact_context(&mut g.con, USER, "nobody")
            .await
            .expect("context"),
        None
    );
}

#[tokio::test]
async fn hostile_values_are_stored_verbatim_and_change_nothing_else() {
    let mut g = with_module().await;
    graph::import(&mut g.con, &shipped()).await.expect("import");
    let (nodes_before, edges_before) = census(&mut g.con).await;

    let hostile = [
        "O'Brien",
        r"back\slash\",
        "'}) DETACH DELETE n //",
        r#""}) MATCH (n) DETACH DELETE n RETURN 1 //"#,
        r"\'}) MATCH (n) DETACH DELETE n //",
        "two\nlines and a tab\t",
        "emoji ❤️ and ünïcödé",
        "$id",
    ];
    let mut file = shipped();
    for (i, name) in hostile.iter().enumerate() {
        let mut e = contact(&format!("h{i}' OR 1=1 //"), Some(name), name);
        e.knows.push(KnownPerson {
            name: format!("{name} (person)"),
            occupation: Some((*name).to_owned()),
            location: None,
            notes: None,
            works_at: None,
        });
        file.contacts.push(e);
    }
    // Example messages whose text looks like list syntax must come back whole.
    file.personas[0].style.example_messages =
        vec!["a, b".into(), "[x]".into(), r#"quote " and ' and \"#.into()];
    file.personas[0].style.style_guide = "'}) DETACH DELETE n //".into();
    graph::import(&mut g.con, &file)
        .await
        .expect("hostile import");

    let counts = graph::counts(&mut g.con).await.expect("counts");
    let n = hostile.len() as u64;
    let before = |label: &str| {
        nodes_before
            .iter()
            .find(|(l, _)| l == label)
            .map_or(0, |(_, c)| *c)
    };
    assert_eq!(counts.node("Contact"), before("Contact") + n);
    assert_eq!(counts.node("Person"), before("Person") + n);
    assert_eq!(counts.node("Persona"), before("Persona"));
    assert_eq!(counts.node("Topic"), before("Topic"));
    let edge_before = |kind: &str| {
        edges_before
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(0, |(_, c)| *c)
    };
    assert_eq!(counts.relationship("KNOWS"), edge_before("KNOWS") + n);
    assert_eq!(counts.relationship("MENTIONED"), edge_before("MENTIONED"));

    let names = graph::contact_names(&mut g.con).await.expect("names");
    for (i, name) in hostile.iter().enumerate() {
        let id = format!("h{i}' OR 1=1 //");
        assert_eq!(names.get(&id).map(String::as_str), Some(*name), "{id}");
        let ctx = graph::contact_context(&mut g.con, USER, &id)
            .await
            .expect("ctx")
            .expect("known");
        assert_eq!(ctx.relationship_type, *name);
        assert_eq!(ctx.people[0].name, format!("{name} (person)"));
        assert_eq!(ctx.people[0].occupation.as_deref(), Some(*name));
        let r = graph::resolve_persona(&mut g.con, USER, &id)
            .await
            .expect("resolve");
        assert_eq!(r.rule, Rule::UserDefault, "{id}");
        assert!(
            graph::set_bot_enabled(&mut g.con, &id, true)
                .await
                .expect("enable")
        );
    }
    assert_eq!(
        names.get("sam-work").map(String::as_str),
        Some("Sam Carter")
    );
    let style = graph::persona_style(&mut g.con, &file.personas[0].id)
        .await
        .expect("style");
    assert_eq!(style, file.personas[0].style);

    // Enabling one hostile id touched only that contact.
    let enabled: Vec<String> = graph::contacts(&mut g.con)
        .await
        .expect("contacts")
        .into_iter()
        .filter(|c| c.bot_enabled)
        .map(|c| c.id)
        .collect();
    assert_eq!(enabled.len(), 4 + hostile.len(), "{enabled:?}");

    // A NUL cannot be sent through the parser intact: refused, nothing written.
    let before_nul = census(&mut g.con).await;
    let mut nul = shipped();
    nul.contacts = vec![contact("nul", Some("a\0b"), "friend")];
    let err = graph::import(&mut g.con, &nul)
        .await
        .expect_err("NUL refused");
    assert!(matches!(err, GraphError::Invalid { .. }), "{err}");
    assert_eq!(census(&mut g.con).await, before_nul);
}

#[tokio::test]
async fn bot_enabled_is_mirrored_into_the_graph() {
    let mut g = with_module().await;
    // No graph yet: nothing to mirror, and no empty graph created on the way.
    assert!(
        !graph::set_bot_enabled(&mut g.con, "mom", true)
            .await
            .expect("set")
    );
    assert!(
        graph::contact_names(&mut g.con)
            .await
            .expect("names")
            .is_empty()
    );
    let exists: bool = g.con.exists(schema::graph()).await.expect("exists");
    assert!(
        !exists,
        "reads and skipped writes must not create the graph key"
    );

    graph::import(&mut g.con, &shipped()).await.expect("import");
    assert!(
        graph::set_bot_enabled(&mut g.con, "spam-bot", true)
            .await
            .expect("set")
    );
    assert!(
        graph::set_bot_enabled(&mut g.con, "mom", false)
            .await
            .expect("set")
    );
    assert!(
        !graph::set_bot_enabled(&mut g.con, "stranger", true)
            .await
            .expect("set")
    );
    let contacts = graph::contacts(&mut g.con).await.expect("contacts");
    let on = |id: &str| contacts.iter().any(|c| c.id == id && c.bot_enabled);
    assert!(on("spam-bot") && !on("mom") && on("alex"));
    assert!(!contacts.iter().any(|c| c.id == "stranger"));
}

fn cli(g: &Graph, args: &[&str]) -> Output {
    let dir = g.dir.join("cli");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("config.toml");
    std::fs::write(&config, "").expect("config");
    Command::new(env!("CARGO_BIN_EXE_secondme"))
        .arg("--redis-url")
        .arg(g.server.url())
        .arg("--config")
        .arg(&config)
        .args(args)
        .env("XDG_CONFIG_HOME", &dir)
        .env("XDG_STATE_HOME", &dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run secondme")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn graph_json() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/graph.json")
}

#[tokio::test]
async fn without_falkordb_the_graph_is_unavailable_with_a_clear_error() {
    let mut g = without_module().await;
    assert!(!g.server.has_falkordb());
    assert!(!graph::available(&mut g.con).await);
    let err = graph::require(&mut g.con).await.expect_err("no module");
    assert!(matches!(err, GraphError::NoModule(_)), "{err}");
    let err = graph::contact_names(&mut g.con)
        .await
        .expect_err("no module");
    assert!(matches!(err, GraphError::NoModule(_)), "{err}");

    for args in [
        &["persona", "list"][..],
        &["contact", "list"][..],
        &["persona", "import", &graph_json().to_string_lossy()][..],
    ] {
        let out = cli(&g, args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            stderr.contains("this Redis has no FalkorDB module: ")
                && stderr.contains("--loadmodule"),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test]
async fn cli_imports_and_lists() {
    let g = with_module().await;
    let file = graph_json();
    let out = cli(&g, &["persona", "import", &file.to_string_lossy()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, text(&out.stderr));
    assert!(
        stdout.contains("personas  casual, professional, family"),
        "{stdout}"
    );
    assert!(
        stdout.contains("contacts  mom, alex, sam-work, jo, spam-bot"),
        "{stdout}"
    );
    assert!(
        stdout.contains("17 node(s) and 16 relationship(s) created"),
        "{stdout}"
    );

    let again = text(&cli(&g, &["persona", "import", &file.to_string_lossy()]).stdout);
    assert!(
        again.contains("0 node(s) and 0 relationship(s) created"),
        "{again}"
    );
    assert!(again.contains("already held"), "{again}");

    let out = cli(&g, &["persona", "list"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("casual *"), "{stdout}");
    assert!(stdout.contains("colleague"), "{stdout}");

    let out = cli(&g, &["contact", "list"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = |id: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no line for {id}:\n{stdout}"))
            .to_owned()
    };
    let sam = line("sam-work");
    assert!(
        sam.contains("Sam Carter") && sam.contains("professional (assigned)"),
        "{sam}"
    );
    // Nobody is opted in through Redis yet; the graph's wish is shown beside it.
    assert!(sam.contains("off (graph: on)"), "{sam}");
    assert!(line("mom").contains("family (by relationship)"));
    let spam = line("spam-bot");
    assert!(
        spam.contains("casual (user default)") && spam.ends_with("off"),
        "{spam}"
    );

    let bad = cli(&g, &["persona", "import", "/nonexistent/graph.json"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("/nonexistent/graph.json"),
        "{}",
        text(&bad.stderr)
    );
}

/// The worker answers each contact with the persona the graph resolves, and uses
/// the seed's cache in front of the graph.
#[tokio::test]
async fn the_worker_answers_with_the_personas_the_graph_resolves() {
    let mut g = with_module().await;
    graph::import(&mut g.con, &shipped()).await.expect("import");
    let _: () = g.con.set("SECONDME:state", 1).await.expect("marker");
    store::optin::set_enabled(&mut g.con, &["mom".into(), "sam-work".into()], true)
        .await
        .expect("enable");
    // The shipped graph sleeps 23:00-07:00; this test is about personas.
    let (stop_tx, worker) = spawn_worker(&g, "graph-worker", Some("off"));
    for (id, contact, text) in [
        ("g1", "mom", "are you coming on Sunday?"),
        ("g2", "sam-work", "any news on the Q3 budget?"),
    ] {
        send(&mut g.con, &common::incoming(id, contact, text)).await;
    }
    let mut personas = std::collections::HashMap::new();
    for _ in 0..250 {
        let reply: redis::streams::StreamRangeReply =
            g.con.xrange_all("QUEUE:responses").await.expect("xrange");
        personas = reply
            .ids
            .iter()
            .map(|e| {
                (
                    e.get::<String>("contactId").unwrap_or_default(),
                    (
                        e.get::<String>("persona").unwrap_or_default(),
                        e.get::<String>("content").unwrap_or_default(),
                    ),
                )
            })
            .collect();
        if personas.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(personas["mom"].0, "family", "by relationship");
    assert_eq!(personas["sam-work"].0, "professional", "assigned");
    assert!(
        personas["sam-work"].1.starts_with("Regarding Q3 budget:"),
        "the graph's topics reach the reply engine: {}",
        personas["sam-work"].1
    );
    let ttl: i64 = g.con.ttl("CACHE:persona:family").await.expect("ttl");
    assert!(
        (1..=1800).contains(&ttl),
        "cache rebuilt from the graph with its TTL: {ttl}"
    );
    let _ = stop_tx.send(true);
    worker.await.expect("join").expect("worker");
}

/// The worker's bulk resolution follows the same rules as the per-contact one.
#[tokio::test]
async fn resolving_all_contacts_at_once_agrees_with_one_at_a_time() {
    let mut g = with_module().await;
    graph::import(&mut g.con, &shipped()).await.expect("import");
    let all = graph::resolve_all(&mut g.con, USER)
        .await
        .expect("resolve all");
    let contacts = graph::contacts(&mut g.con).await.expect("contacts");
    assert_eq!(all.by_contact.len(), contacts.len());
    for c in &contacts {
        let one = graph::resolve_persona(&mut g.con, USER, &c.id)
            .await
            .expect("one");
        assert_eq!(all.by_contact[&c.id], one, "{}", c.id);
    }
    let unknown = graph::resolve_persona(&mut g.con, USER, "nobody-knows")
        .await
        .expect("unknown");
    assert_eq!(all.default.as_deref(), Some(unknown.persona_id.as_str()));
}

/// Sleep hours set on the graph's user hold the worker's replies back, and
/// `resolve_all` reports them.
#[tokio::test]
async fn the_graphs_sleep_hours_hold_replies_back() {
    let mut g = with_module().await;
    graph::import(&mut g.con, &shipped()).await.expect("import");
    let night = common::sleep_window(true).to_string();
    let (start, end) = night.split_once('-').expect("HH:MM-HH:MM");
    let _: redis::Value = redis::cmd("GRAPH.QUERY")
        .arg(schema::graph())
        .arg(format!(
            "MATCH (u:User) SET u.sleepHoursStart = '{start}', u.sleepHoursEnd = '{end}'"
        ))
        .query_async(&mut g.con)
        .await
        .expect("set sleep hours");
    let all = graph::resolve_all(&mut g.con, USER)
        .await
        .expect("resolve all");
    assert_eq!(all.sleep_hours, Some((start.to_owned(), end.to_owned())));

    let _: () = g.con.set("SECONDME:state", 1).await.expect("marker");
    store::optin::set_enabled(&mut g.con, &["mom".into()], true)
        .await
        .expect("enable");
    let (stop_tx, worker) = spawn_worker(&g, "graph-sleeper", None);
    send(
        &mut g.con,
        &common::incoming("late", "mom", "are you asleep?"),
    )
    .await;
    let mut state = None;
    for _ in 0..250 {
        state = store::handled::state(&mut g.con, "late")
            .await
            .expect("read");
        if state.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(state.as_deref(), Some("skip:sleep_hours"));
    let replies: usize = g.con.xlen("QUEUE:responses").await.expect("xlen");
    assert_eq!(replies, 0);
    let _ = stop_tx.send(true);
    let status = worker.await.expect("join").expect("worker");
    assert!(status.asleep.is_some(), "{status:?}");
}

/// Writes a message to `QUEUE:messages` as a gateway does.
async fn send(con: &mut Con, m: &secondme::schema::QueueMessage) {
    let _: String = store::queue::xadd(m, false)
        .query_async(con)
        .await
        .expect("xadd");
}

/// A graph holding a second `User` that sorts before the configured one, with
/// its own contacts: every reader picks the configured `user_id`, never the first
/// user by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_user_is_used_not_the_first_in_the_graph() {
    let mut g = with_module().await;
    graph::import(&mut g.con, &shipped()).await.expect("import");
    let mut other = shipped();
    other.user.id = "aaa-someone-else".into();
    other.user.default_persona = "professional".into();
    other.user.sleep_hours_start = Some("00:00".into());
    other.user.sleep_hours_end = Some("23:59".into());
    for c in &mut other.contacts {
        c.contact.id = format!("other-{}", c.contact.id);
        c.contact.assigned_persona = Some("professional".into());
    }
    graph::import(&mut g.con, &other)
        .await
        .expect("import another user");

    let user = graph::user(&mut g.con, USER)
        .await
        .expect("user")
        .expect("the configured user");
    assert_eq!(user.id, USER);
    assert_eq!(user.default_persona, "casual");
    assert!(
        graph::user(&mut g.con, "nobody")
            .await
            .expect("user")
            .is_none()
    );

    let all = graph::resolve_all(&mut g.con, USER).await.expect("resolve");
    assert_eq!(all.default.as_deref(), Some("casual"), "{all:?}");
    assert_eq!(
        all.sleep_hours,
        Some(("23:00".to_owned(), "07:00".to_owned())),
        "the configured user's sleep hours"
    );
    assert_eq!(all.by_contact.len(), shipped().contacts.len(), "{all:?}");
    assert!(all.by_contact.keys().all(|id| !id.starts_with("other-")));

    // Another user's contact is not this user's: the default, and no context.
    let stranger = graph::resolve_persona(&mut g.con, USER, "other-mom")
        .await
        .expect("resolve");
    assert_eq!(stranger.persona_id, "casual");
    assert_eq!(stranger.rule, Rule::UserDefault);
    let context = graph::contact_context(&mut g.con, USER, "other-sam-work")
        .await
        .expect("context");
    assert!(context.is_none(), "{context:?}");
    let theirs = graph::resolve_all(&mut g.con, "aaa-someone-else")
        .await
        .expect("resolve other");
    assert_eq!(theirs.default.as_deref(), Some("professional"));

    // Through the CLI (default user_id user-1): `persona list` stars its default.
    let out = cli(&g, &["persona", "list"]);
    let listed = text(&out.stdout);
    let starred: Vec<&str> = listed.lines().filter(|l| l.contains(" *")).collect();
    assert_eq!(starred.len(), 1, "{listed}");
    assert!(starred[0].starts_with("casual *"), "{listed}");
}
