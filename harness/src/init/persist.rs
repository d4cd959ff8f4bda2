//! A persistence scenario for `init --observe`: a known database keeping its data on a named
//! volume promises, by that volume, that what it stores survives the stack going down and up
//! again. The scenario writes a row (or a key) through the server's own client, takes the stack
//! down and up with its volumes kept, and reads it back. It is written only when it held while
//! the stack was watched (it is run once there, and once more as part of the written suite).

use std::fmt::Write;

use super::{list, q};
use crate::engine::ModelService;

/// The value written and read back.
const MARK: &str = "4242";

/// The scenario for `name` when it is a server whose data lives on a named volume: its check's
/// lines (`- name:` first), indented for `checks:`.
pub(super) fn scenario(name: &str, s: &ModelService, named_volumes: &[&String]) -> Option<String> {
    let (what, data, write, read) = by_server(s)?;
    let volume = s.volumes.iter().find(|m| {
        m.source
            .as_ref()
            .is_some_and(|v| named_volumes.contains(&v))
            && (data == m.target || data.starts_with(&format!("{}/", m.target)))
    })?;
    let source = volume.source.clone().unwrap_or_default();
    let step = |cmd: &[String]| format!("exec: {{ service: {}, cmd: {} }}", q(name), list(cmd));
    let mut y = String::new();
    let _ = writeln!(
        y,
        "  # {what} keeps its data in {data} on the named volume `{source}`: seen written, then read\n  \
         # back after `down_up` (volumes kept)"
    );
    let _ = writeln!(
        y,
        "  - name: {}",
        q(&format!("{name} keeps its data across down_up"))
    );
    let _ = writeln!(y, "    steps:");
    for cmd in &write {
        let _ = writeln!(y, "      - {}", step(cmd));
    }
    let _ = writeln!(y, "      - down_up: true");
    let _ = writeln!(y, "      - {}", step(&read));
    let _ = writeln!(y, "        expect: {{ stdout: \"/{MARK}/\" }}");
    let _ = writeln!(y, "        retry: {{ for: 60s, every: 1s }}");
    Some(y)
}

/// What the server is, its data directory, the commands that write the mark, and the one that
/// reads it back.
type Persisting = (&'static str, String, Vec<Vec<String>>, Vec<String>);

/// The [`Persisting`] of a server this knows.
fn by_server(s: &ModelService) -> Option<Persisting> {
    let known = super::server(s, std::path::Path::new("."))?;
    let words = |w: &[&str]| w.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    let env = |k: &str| {
        s.environment
            .get(k)
            .cloned()
            .flatten()
            .filter(|v| !v.is_empty())
    };
    match known.what {
        "PostgreSQL" => {
            let user = env("POSTGRES_USER").unwrap_or_else(|| "postgres".into());
            let db = env("POSTGRES_DB").unwrap_or_else(|| user.clone());
            let data = env("PGDATA").unwrap_or_else(|| "/var/lib/postgresql/data".into());
            let psql = |sql: &str| {
                let mut cmd = words(&["psql", "-U", &user, "-d", &db, "-v", "ON_ERROR_STOP=1"]);
                cmd.extend(words(&["-tAc", sql]));
                cmd
            };
            let create = format!(
                "create table if not exists stackcheck_persisted(x int); insert into stackcheck_persisted values ({MARK})"
            );
            let read = psql("select x from stackcheck_persisted limit 1");
            Some(("PostgreSQL", data, vec![psql(&create)], read))
        }
        "Redis" => Some((
            "Redis",
            "/data".into(),
            vec![
                words(&["redis-cli", "SET", "stackcheck:persisted", MARK]),
                words(&["redis-cli", "SAVE"]),
            ],
            words(&["redis-cli", "GET", "stackcheck:persisted"]),
        )),
        _ => None,
    }
}
