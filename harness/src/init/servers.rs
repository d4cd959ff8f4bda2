//! Servers a compose service runs, known by its image or its command: a database, a broker, a web
//! or application server, a task-queue worker. `init` never takes one for a one-shot job, however
//! quiet its compose entry (no healthcheck, port or restart policy: the usual shape of Postgres,
//! Redis and Celery in public projects); for a database or a broker it knows the command that
//! says the server is ready.

use std::path::Path;

use crate::engine::{Dockerfile, ModelService};

/// A server `init` recognised, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// What it is: `PostgreSQL`, `a Celery worker`.
    pub what: &'static str,
    /// Where that was read: `its image \`postgres:15\``, `its command`.
    pub by: String,
    /// The port it listens on unless told otherwise.
    pub port: Option<u16>,
    /// The server's own readiness command, run inside its container (exit 0: ready).
    pub ready: Option<&'static [&'static str]>,
}

/// An image's server: what it is, the port it listens on by default, its readiness command.
type Known = (
    &'static str,
    &'static str,
    Option<u16>,
    Option<&'static [&'static str]>,
);

/// Images by their name's last path part (no tag).
const IMAGES: &[Known] = &[
    (
        "postgres",
        "PostgreSQL",
        Some(5432),
        Some(&["pg_isready", "-h", "127.0.0.1"]),
    ),
    (
        "postgis",
        "PostgreSQL",
        Some(5432),
        Some(&["pg_isready", "-h", "127.0.0.1"]),
    ),
    (
        "mysql",
        "MySQL",
        Some(3306),
        Some(&["mysqladmin", "ping", "-h", "127.0.0.1"]),
    ),
    (
        "mariadb",
        "MariaDB",
        Some(3306),
        Some(&[
            "sh",
            "-c",
            "mariadb-admin ping -h 127.0.0.1 || mysqladmin ping -h 127.0.0.1",
        ]),
    ),
    ("redis", "Redis", Some(6379), Some(&["redis-cli", "ping"])),
    (
        "valkey",
        "Valkey",
        Some(6379),
        Some(&["valkey-cli", "ping"]),
    ),
    (
        "mongo",
        "MongoDB",
        Some(27017),
        Some(&["mongosh", "--quiet", "--eval", "db.adminCommand('ping').ok"]),
    ),
    (
        "rabbitmq",
        "RabbitMQ",
        Some(5672),
        Some(&["rabbitmq-diagnostics", "-q", "ping"]),
    ),
    ("memcached", "Memcached", Some(11211), None),
    ("elasticsearch", "Elasticsearch", Some(9200), None),
    ("opensearch", "OpenSearch", Some(9200), None),
    ("kafka", "Kafka", Some(9092), None),
    ("zookeeper", "ZooKeeper", Some(2181), None),
    ("nats", "NATS", Some(4222), None),
    ("etcd", "etcd", Some(2379), None),
    ("consul", "Consul", Some(8500), None),
    ("vault", "Vault", Some(8200), None),
    ("minio", "MinIO", Some(9000), None),
    ("clickhouse-server", "ClickHouse", Some(8123), None),
    ("influxdb", "InfluxDB", Some(8086), None),
    ("cassandra", "Cassandra", Some(9042), None),
    ("couchdb", "CouchDB", Some(5984), None),
    ("nginx", "nginx", Some(80), None),
    ("httpd", "Apache httpd", Some(80), None),
    ("caddy", "Caddy", Some(80), None),
    ("traefik", "Traefik", Some(80), None),
    ("haproxy", "HAProxy", Some(80), None),
    ("grafana", "Grafana", Some(3000), None),
    ("prometheus", "Prometheus", Some(9090), None),
    ("keycloak", "Keycloak", Some(8080), None),
    ("mailhog", "MailHog", Some(8025), None),
    ("mailpit", "Mailpit", Some(8025), None),
];

/// Words of a command that start a long-running server or worker.
const COMMANDS: &[(&str, &str)] = &[
    ("celery", "a Celery worker"),
    ("gunicorn", "Gunicorn"),
    ("uvicorn", "Uvicorn"),
    ("hypercorn", "Hypercorn"),
    ("daphne", "Daphne"),
    ("waitress-serve", "Waitress"),
    ("runserver", "Django's server"),
    ("flask run", "Flask's server"),
    ("http.server", "Python's HTTP server"),
    ("rq worker", "an RQ worker"),
    ("dramatiq", "a Dramatiq worker"),
    ("sidekiq", "a Sidekiq worker"),
    ("puma", "Puma"),
    ("rails server", "Rails' server"),
    ("npm start", "an npm server"),
    ("npm run start", "an npm server"),
    ("node ", "a Node.js process"),
    ("php-fpm", "PHP-FPM"),
    ("nginx", "nginx"),
    ("redis-server", "Redis"),
    ("postgres", "PostgreSQL"),
    ("mysqld", "MySQL"),
];

/// The server a service runs, if its image or its command says so (for a service that builds,
/// the Dockerfile's `CMD` and `ENTRYPOINT` when the compose file sets neither).
pub fn server(service: &ModelService, dir: &Path) -> Option<Server> {
    if let Some(image) = service.image.as_deref() {
        let name = image_name(image);
        if let Some((_, what, port, ready)) = IMAGES.iter().find(|(n, ..)| *n == name) {
            return Some(Server {
                what,
                by: format!("its image `{image}`"),
                port: *port,
                ready: *ready,
            });
        }
    }
    let command = command_line(service, dir)?;
    let (_, what) = COMMANDS
        .iter()
        .find(|(word, _)| contains_word(&command, word))?;
    Some(Server {
        what,
        by: "its command".into(),
        port: None,
        ready: None,
    })
}

/// `docker.io/library/postgres:15-alpine@sha256:…` → `postgres`.
fn image_name(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    last.split(':').next().unwrap_or(last)
}

/// The service's entrypoint and command as one line (compose's, else its Dockerfile's).
fn command_line(service: &ModelService, dir: &Path) -> Option<String> {
    let words = |v: &serde_json::Value| -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|w| w.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut all: Vec<String> = [&service.entrypoint, &service.command]
        .into_iter()
        .flatten()
        .flat_map(words)
        .collect();
    if all.is_empty() {
        let build = service.build.as_ref()?;
        let file = Dockerfile::read(&build.dockerfile_path(dir), build.target.as_deref())?;
        all = file
            .entrypoint
            .into_iter()
            .flatten()
            .chain(file.cmd.into_iter().flatten())
            .collect();
    }
    (!all.is_empty()).then(|| all.join(" "))
}

/// Whether `word` (one or more words) appears in `line` on word boundaries (`node ` needs its
/// space; `postgres` is not `postgres_data`).
fn contains_word(line: &str, word: &str) -> bool {
    let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
    line.match_indices(word).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + word.len()..].chars().next();
        boundary(before) && (word.ends_with(' ') || boundary(after))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(json: &str) -> ModelService {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn servers_are_known_by_image_or_command() {
        let db = server(
            &service(r#"{"image":"postgres:15-alpine"}"#),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(db.what, "PostgreSQL");
        assert_eq!(db.by, "its image `postgres:15-alpine`");
        assert!(db.ready.is_some());
        let redis = server(
            &service(r#"{"image":"docker.io/library/redis:7@sha256:ab"}"#),
            Path::new("."),
        );
        assert_eq!(redis.unwrap().what, "Redis");
        let worker =
            service(r#"{"image":"app","command":["celery","-A","proj","worker","-l","info"]}"#);
        assert_eq!(
            server(&worker, Path::new(".")).unwrap().what,
            "a Celery worker"
        );
        let web = service(r#"{"image":"app","command":"python manage.py runserver 0.0.0.0:8000"}"#);
        assert_eq!(
            server(&web, Path::new(".")).unwrap().what,
            "Django's server"
        );
        // A migration job is no server; a word inside another is no match.
        let job = service(r#"{"image":"app","command":"python manage.py migrate --noinput"}"#);
        assert_eq!(server(&job, Path::new(".")), None);
        let backup =
            service(r#"{"image":"alpine","command":"pg_dump -f /backup/postgres_data.sql"}"#);
        assert_eq!(server(&backup, Path::new(".")), None);
    }
}
