//! The gateway's files among the user's: a start tightens only its own, a
//! logout deletes only its own.

use secondme::bridge::whatsapp::inbox::{Directory, Inbox};
use secondme::bridge::whatsapp::link::{Connector, Link};
use tokio::sync::mpsc;

use crate::binary::{closed_endpoint, real_command};
use crate::common::{Harness, TestDir};

/// Mode bits of `path`.
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// A directory of the user's in the gateway's: a file (0640) and a folder
/// (0750) holding a file.
fn user_things(wa: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let photos = wa.join("photos");
    std::fs::create_dir_all(&photos).expect("dirs");
    std::fs::write(photos.join("beach.jpg"), b"jpg").expect("photo");
    std::fs::write(wa.join("notes.txt"), b"mine").expect("notes");
    for (path, mode) in [(photos, 0o750), (wa.join("notes.txt"), 0o640)] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

/// What [`user_things`] made is all there, with its modes.
fn user_things_kept(wa: &std::path::Path) {
    assert_eq!(
        mode_of(&wa.join("photos")),
        0o750,
        "the folder stays usable"
    );
    assert_eq!(
        std::fs::read(wa.join("photos").join("beach.jpg")).expect("the photo is kept"),
        b"jpg"
    );
    assert_eq!(mode_of(&wa.join("notes.txt")), 0o640);
    assert_eq!(
        std::fs::read(wa.join("notes.txt")).expect("the file is kept"),
        b"mine"
    );
}

/// The gateway's directory may hold things of the user's: a start (the real
/// library opening its SQLite store) makes only the gateway's files 0600, and
/// deleting the store (at a logout) removes only those.
#[tokio::test]
async fn the_gateway_tightens_and_deletes_only_its_own_files() {
    use secondme::bridge::whatsapp::client::{
        CONTACTS_FILE, OWN_FILES, STORE_FILE, WhatsAppConnector,
    };
    use secondme::bridge::whatsapp::contact::ContactHasher;
    use secondme::bridge::whatsapp::mapping::MapOptions;
    use std::os::unix::fs::PermissionsExt;
    let h = Harness::start().await;
    let dir = TestDir::new("wa-own");
    let wa = dir.join("wa");
    user_things(&wa);
    let contacts = wa.join(CONTACTS_FILE);
    std::fs::write(&contacts, b"{}").expect("contacts");
    std::fs::set_permissions(&contacts, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let connector = WhatsAppConnector::new(
        wa.clone(),
        ContactHasher::new([1; 32]),
        MapOptions::default(),
    )
    .with_endpoint(closed_endpoint());
    let inbox = Inbox::new(
        h.con.clone(),
        h.acked,
        Directory::open(contacts.clone()).expect("directory"),
    );
    let (tx, _events) = mpsc::channel(64);
    let link = connector.connect(inbox, tx).await.expect("the store opens");
    link.shutdown().await;
    user_things_kept(&wa);
    assert_eq!(mode_of(&wa.join(STORE_FILE)), 0o600);
    assert_eq!(
        mode_of(&contacts),
        0o600,
        "an older, looser file is tightened"
    );
    for name in OWN_FILES {
        if wa.join(name).exists() {
            assert_eq!(mode_of(&wa.join(name)), 0o600, "{name}");
        }
    }
    // What a crash may leave behind is the gateway's too.
    for leftover in ["device.db-journal", "contacts.tmp"] {
        std::fs::write(wa.join(leftover), b"x").expect("leftover");
    }
    assert!(connector.has_store());
    connector.remove_store().expect("deleted");
    for name in OWN_FILES {
        assert!(!wa.join(name).exists(), "{name} is deleted");
    }
    assert!(!connector.has_store());
    user_things_kept(&wa);
}

/// `secondme logout` deletes the gateway's files and leaves the user's.
#[tokio::test]
async fn secondme_logout_leaves_what_is_not_the_gateway_s() {
    let h = Harness::start().await;
    let dir = TestDir::new("wa-logout-own");
    let wa = dir.join("wa");
    user_things(&wa);
    let own = [
        "contacts.json",
        "contacts.tmp",
        "device.db-wal",
        "device.db-shm",
        "device.db-journal",
    ];
    for name in own {
        std::fs::write(wa.join(name), b"x").expect("file");
    }
    let out = real_command(&h, &dir, &["logout"])
        .output()
        .expect("run secondme logout");
    assert!(
        out.status.success(),
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for name in own {
        assert!(!wa.join(name).exists(), "{name} is deleted");
    }
    user_things_kept(&wa);
}
