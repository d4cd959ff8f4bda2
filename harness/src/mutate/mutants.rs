//! The mutants of a stack: each one breakage of one promise a stack could make, written as one
//! compose file added after the user's files (never an edit of them). Derived from compose's own
//! model and from what the unmutated stack showed when it ran ([`ServiceFacts`]).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::engine::ComposeModel;
use crate::plan::{override_key, reset_key, tagged_yaml};
use crate::run::ServiceFacts;

/// What kind of breakage a mutant is (`mutate --only`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum MutantKind {
    /// A published port is no longer published.
    PortDropped,
    /// The healthcheck always fails.
    HealthFails,
    /// The service's command is replaced by an idle one: the process is up, nothing listens.
    IdleCommand,
    /// The service exits 2 s after it starts.
    ExitsEarly,
    /// A `network_mode: none` service is put on a normal network, or an internal network is
    /// made a normal one.
    NetworkOpened,
    /// A named volume is replaced by a fresh one at every start: its data is lost on restart.
    VolumeFresh,
    /// The restart policy is removed.
    RestartRemoved,
    /// One environment variable is removed.
    EnvRemoved,
    /// A `depends_on` condition (healthy, completed) is dropped to "started".
    DependsOnDropped,
    /// A read-only mount is made writable.
    MountWritable,
}

impl MutantKind {
    /// The name the CLI and reports use.
    pub fn name(self) -> &'static str {
        match self {
            MutantKind::PortDropped => "port-dropped",
            MutantKind::HealthFails => "health-fails",
            MutantKind::IdleCommand => "idle-command",
            MutantKind::ExitsEarly => "exits-early",
            MutantKind::NetworkOpened => "network-opened",
            MutantKind::VolumeFresh => "volume-fresh",
            MutantKind::RestartRemoved => "restart-removed",
            MutantKind::EnvRemoved => "env-removed",
            MutantKind::DependsOnDropped => "depends-on-dropped",
            MutantKind::MountWritable => "mount-writable",
        }
    }
}

/// One breakage of the stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mutant {
    /// Its kind.
    pub kind: MutantKind,
    /// The service (or `network <key>`) it changes.
    pub target: String,
    /// Which part of it: a port mapping, variable, volume, path or dependency; empty for a
    /// change of the whole service.
    pub part: String,
    /// The change in words: "`cache` loses `ledger_data` at every start".
    pub change: String,
    /// A promise or check that would notice it.
    pub suggestion: String,
    /// The compose file that makes the change, added after the user's files.
    pub file: String,
}

impl Mutant {
    /// Whether compose's model with the mutant's file (`raw`, as `config` prints it) has the
    /// change: a merge rule can quietly keep what a file meant to take away, and a mutant that
    /// changed nothing would be a false survivor.
    pub fn took_effect(&self, raw: &Value) -> bool {
        if let Some(key) = self.target.strip_prefix("network ") {
            return raw["networks"][key]["internal"] != json!(true);
        }
        let s = &raw["services"][&self.target];
        let list = |key: &str| s[key].as_array().cloned().unwrap_or_default();
        let has = |key: &str, text: &str| list(key).iter().any(|v| v.as_str() == Some(text));
        match self.kind {
            MutantKind::PortDropped => !list("ports").iter().any(|p| {
                let mapping = format!("{}:{}", p["published"].as_str().unwrap_or(""), p["target"]);
                mapping == self.part
            }),
            MutantKind::HealthFails => s["healthcheck"]["test"]
                .as_array()
                .is_some_and(|t| t.iter().any(|v| v.as_str() == Some(NO_PROBE))),
            MutantKind::IdleCommand => has("entrypoint", IDLE),
            MutantKind::ExitsEarly => has("entrypoint", &literal(EXIT_EARLY)),
            MutantKind::NetworkOpened => s["network_mode"] == json!("bridge"),
            MutantKind::VolumeFresh => !list("volumes")
                .iter()
                .any(|v| v["source"].as_str() == Some(&self.part)),
            MutantKind::RestartRemoved => {
                matches!(s["restart"].as_str(), None | Some("no"))
                    && s["deploy"]["restart_policy"].is_null()
            }
            MutantKind::EnvRemoved => s["environment"].get(&self.part).is_none(),
            MutantKind::DependsOnDropped => {
                s["depends_on"][&self.part]["condition"] == json!("service_started")
            }
            MutantKind::MountWritable => list("volumes")
                .iter()
                .any(|v| v["target"].as_str() == Some(&self.part) && v["read_only"] != json!(true)),
        }
    }

    /// Stable id: `<kind>:<target>[:<part>]`.
    pub fn id(&self) -> String {
        match self.part.as_str() {
            "" => format!("{}:{}", self.kind.name(), self.target),
            part => format!("{}:{}:{part}", self.kind.name(), self.target),
        }
    }
}

/// The file that keeps an idle process up in place of the command; it stops on SIGTERM at once
/// (an idle `sleep` as PID 1 would hold every teardown for its grace period).
const IDLE: &str = "trap 'exit 0' TERM; while :; do sleep 1; done";
/// Runs the service's own command, and exits with 1 two seconds after the start.
const EXIT_EARLY: &str = "\"$@\" & sleep 2; exit 1";

/// `text` as a compose file must write it to mean it literally: compose interpolates `$`, and
/// prints a literal one as `$$` (what the container ran, e.g. `sh -c 'echo $HOME'`, is literal).
fn literal(text: &str) -> String {
    text.replace('$', "$$")
}
/// A healthcheck whose command cannot start fails on every engine, shell or not.
const NO_PROBE: &str = "/stackcheck-mutant/no-such-healthcheck";

/// Every mutant of the services in `facts` (the ones the unmutated run started), in a stable
/// order: by service, then kind, then part; then the networks.
pub fn mutants(model: &ComposeModel, facts: &BTreeMap<String, ServiceFacts>) -> Vec<Mutant> {
    let mut out = Vec::new();
    let empty = Value::Null;
    for (name, f) in facts {
        let raw = model.raw["services"].get(name).unwrap_or(&empty);
        if raw.is_null() {
            continue;
        }
        let m = Maker { service: name };
        ports(&m, raw, &mut out);
        health_fails(&m, raw, f, &mut out);
        command_replaced(&m, f, &mut out);
        network_opened(&m, raw, &mut out);
        volumes(&m, raw, &mut out);
        restart_removed(&m, raw, f, &mut out);
        env_removed(&m, raw, f, &mut out);
        depends_on_dropped(&m, raw, &mut out);
    }
    internal_networks_opened(model, facts, &mut out);
    out.sort_by(|a, b| (&a.target, a.kind, &a.part).cmp(&(&b.target, b.kind, &b.part)));
    out
}

/// `health-fails`: the healthcheck (the compose file's or the image's) always fails.
fn health_fails(m: &Maker<'_>, raw: &Value, f: &ServiceFacts, out: &mut Vec<Mutant>) {
    let name = m.service;
    if f.healthcheck && raw["healthcheck"]["disable"] != json!(true) {
        out.push(m.make(
            MutantKind::HealthFails,
            "",
            format!("`{name}`'s healthcheck always fails"),
            format!("`services.{name}.state: healthy`"),
            json!({ "healthcheck": {
                override_key("test"): ["CMD", NO_PROBE],
                "interval": "1s", "timeout": "1s", "retries": 1, "start_period": "0s",
            }}),
        ));
    }
}

/// `idle-command` and `exits-early`: shell wrappers, made only where the image has a shell.
fn command_replaced(m: &Maker<'_>, f: &ServiceFacts, out: &mut Vec<Mutant>) {
    let name = m.service;
    if f.shell {
        out.push(m.make(
            MutantKind::IdleCommand,
            "",
            format!("`{name}` runs an idle process instead of its command (up, serving nothing)"),
            format!("a check that uses what `{name}` serves (`http:`, `tcp:` or `exec:` of its own client)"),
            json!({ override_key("entrypoint"): ["sh", "-c", IDLE, "idle"] }),
        ));
        if !f.entrypoint.is_empty() || !f.cmd.is_empty() {
            let mut entrypoint = vec![
                "sh".to_string(),
                "-c".into(),
                literal(EXIT_EARLY),
                "sh".into(),
            ];
            entrypoint.extend(f.entrypoint.iter().map(|a| literal(a)));
            let command = match f.cmd.is_empty() {
                true => json!({ reset_key("command"): null }),
                false => {
                    json!({ override_key("command"): f.cmd.iter().map(|a| literal(a)).collect::<Vec<_>>() })
                }
            };
            let mut change = json!({ override_key("entrypoint"): entrypoint });
            merge(&mut change, command);
            out.push(m.make(
                MutantKind::ExitsEarly,
                "",
                format!("`{name}` exits 2 s after it starts"),
                format!("`services.{name}.state: running` (or `healthy`)"),
                change,
            ));
        }
    }
}

/// `network-opened` of a `network_mode: none` service: on the default bridge instead.
fn network_opened(m: &Maker<'_>, raw: &Value, out: &mut Vec<Mutant>) {
    let name = m.service;
    if raw["network_mode"] == json!("none") {
        out.push(m.make(
            MutantKind::NetworkOpened,
            "",
            format!("`{name}` is on the default bridge network instead of `network_mode: none`"),
            format!("`isolated: {{ service: {name} }}`"),
            json!({ "network_mode": "bridge" }),
        ));
    }
}

/// `restart-removed`: the restart policy (and `deploy.restart_policy`) removed.
fn restart_removed(m: &Maker<'_>, raw: &Value, f: &ServiceFacts, out: &mut Vec<Mutant>) {
    let name = m.service;
    if !matches!(f.restart.as_str(), "" | "no") {
        let mut change = json!({ "restart": "no" });
        if !raw["deploy"]["restart_policy"].is_null() {
            change["deploy"] = json!({ reset_key("restart_policy"): null });
        }
        out.push(m.make(
            MutantKind::RestartRemoved,
            "",
            format!("`{name}` has no restart policy (it had `{}`)", f.restart),
            format!(
                "`services.{name}.restart: {}`, or a scenario that kills it and expects it back",
                f.restart
            ),
            change,
        ));
    }
}

/// `env-removed`: one variable removed, unless the image sets it to the same value.
fn env_removed(m: &Maker<'_>, raw: &Value, f: &ServiceFacts, out: &mut Vec<Mutant>) {
    let name = m.service;
    for (var, value) in raw["environment"].as_object().into_iter().flatten() {
        // Compose prints a literal `$` as `$$`; the image's ENV has it plain.
        let same = |v: &str| f.image_env.get(var) == Some(&v.replace("$$", "$"));
        if value.as_str().is_some_and(same) {
            continue;
        }
        // The whole map without it: `!reset` of one key leaves a variable written in list
        // form (`- KEY=value`) in place. Values as compose printed them (`$` already `$$`).
        // The printed map already holds what the service's `env_file`s set, and compose would
        // read those files again on top of it: they go, or a variable from one stays.
        let mut rest = raw["environment"].as_object().cloned().unwrap_or_default();
        rest.remove(var);
        out.push(m.make(
            MutantKind::EnvRemoved,
            var,
            format!("`{name}` starts without `{var}`"),
            format!("`services.{name}.env: {{ {var}: … }}`, or a check that depends on it"),
            json!({ override_key("environment"): rest, reset_key("env_file"): null }),
        ));
    }
}

/// `depends-on-dropped`: a `service_healthy` or `service_completed_successfully` condition
/// dropped to `service_started`.
fn depends_on_dropped(m: &Maker<'_>, raw: &Value, out: &mut Vec<Mutant>) {
    let name = m.service;
    let deps = raw["depends_on"].as_object().into_iter().flatten();
    for (dep, d) in deps {
        let condition = d["condition"].as_str().unwrap_or("service_started");
        if condition == "service_started" {
            continue;
        }
        out.push(m.make(
            MutantKind::DependsOnDropped,
            dep,
            format!("`{name}` starts once `{dep}` has started, not on `{condition}`"),
            format!("`services.{name}.depends_on: {{ {dep}: {condition} }}`"),
            json!({ "depends_on": { dep: { "condition": "service_started" } } }),
        ));
    }
}

/// `network-opened` of an internal network the started services use: made normal.
fn internal_networks_opened(
    model: &ComposeModel,
    facts: &BTreeMap<String, ServiceFacts>,
    out: &mut Vec<Mutant>,
) {
    let networks = model.raw["networks"].as_object().into_iter().flatten();
    for (key, n) in networks {
        let used = facts.keys().any(|s| {
            model.raw["services"][s]["networks"]
                .as_object()
                .is_some_and(|nets| nets.contains_key(key))
        });
        if n["internal"] == json!(true) && n["external"] != json!(true) && used {
            out.push(Mutant {
                kind: MutantKind::NetworkOpened,
                target: format!("network {key}"),
                part: String::new(),
                change: format!(
                    "network `{key}` is no longer internal (its services reach outside)"
                ),
                suggestion: format!("`networks.{key}: {{ internal: true }}`"),
                file: tagged_yaml(&json!({ "networks": { key: { "internal": false } } })),
            });
        }
    }
}

/// Makes the mutants of one service.
struct Maker<'a> {
    service: &'a str,
}

impl Maker<'_> {
    fn make(
        &self,
        kind: MutantKind,
        part: &str,
        change: String,
        suggestion: String,
        service: Value,
    ) -> Mutant {
        Mutant {
            kind,
            target: self.service.to_string(),
            part: part.to_string(),
            change,
            suggestion,
            file: tagged_yaml(&json!({ "services": { self.service: service } })),
        }
    }
}

/// One mutant per published port: the list without it.
fn ports(m: &Maker, raw: &Value, out: &mut Vec<Mutant>) {
    let list = raw["ports"].as_array().cloned().unwrap_or_default();
    for (i, p) in list.iter().enumerate() {
        let Some(published) = p["published"].as_str().filter(|s| !s.is_empty()) else {
            continue;
        };
        let target = p["target"].as_u64().unwrap_or(0);
        let mapping = format!("{published}:{target}");
        let rest: Vec<&Value> = list
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| p)
            .collect();
        let name = m.service;
        out.push(m.make(
            MutantKind::PortDropped,
            &mapping,
            format!("`{name}` no longer publishes `{mapping}`"),
            format!("`services.{name}.ports: [\"{mapping}\"]`, or a check that connects to it"),
            json!({ override_key("ports"): rest }),
        ));
    }
}

/// One mutant per named volume (a fresh tmpfs in its place) and per read-only mount (made
/// writable), each the whole list with that one entry changed.
fn volumes(m: &Maker, raw: &Value, out: &mut Vec<Mutant>) {
    let list = raw["volumes"].as_array().cloned().unwrap_or_default();
    let name = m.service;
    for (i, v) in list.iter().enumerate() {
        let target = v["target"].as_str().unwrap_or_default();
        let with = |entry: Value| -> Value {
            let mut all = list.clone();
            all[i] = entry;
            json!({ override_key("volumes"): all })
        };
        if v["type"] == json!("volume") {
            if let Some(source) = v["source"].as_str().filter(|s| !s.is_empty()) {
                out.push(m.make(
                    MutantKind::VolumeFresh,
                    source,
                    format!("`{name}` loses `{source}` at every start (a fresh one at {target})"),
                    format!("a scenario that writes to {target} in `{name}`, then `down_up` (or `restart: {name}`), then reads it back"),
                    with(json!({ "type": "tmpfs", "target": target })),
                ));
            }
        }
        if v["read_only"] == json!(true) {
            let mut writable = v.clone();
            writable["read_only"] = json!(false);
            out.push(m.make(
                MutantKind::MountWritable,
                target,
                format!("`{name}` can write to {target} (mounted read-write)"),
                format!("`services.{name}.read_only_mounts: [{target}]`"),
                with(writable),
            ));
        }
    }
}

/// `b`'s keys into `a` (both objects).
fn merge(a: &mut Value, b: Value) {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn model() -> ComposeModel {
        ComposeModel::parse(
            &json!({
                "name": "p",
                "services": {
                    "api": {
                        "image": "api:1",
                        "restart": "unless-stopped",
                        "ports": [
                            { "target": 8080, "published": "18480", "protocol": "tcp" },
                            { "target": 9000 }
                        ],
                        "environment": { "GREETING": "hello" },
                        "depends_on": { "cache": { "condition": "service_healthy", "required": true } },
                        "volumes": [{ "type": "bind", "source": "/src/app", "target": "/app", "read_only": true }],
                        "networks": { "back": null, "front": null }
                    },
                    "cache": {
                        "image": "redis",
                        "volumes": [{ "type": "volume", "source": "ledger_data", "target": "/data", "volume": {} }],
                        "networks": { "back": null }
                    },
                    "sealed": { "image": "scratchy", "network_mode": "none" },
                    "unstarted": { "image": "x", "ports": [{ "target": 1, "published": "1" }] }
                },
                "networks": { "back": { "internal": true }, "front": {}, "spare": { "internal": true } }
            })
            .to_string(),
        )
        .unwrap()
    }

    pub(crate) fn facts() -> BTreeMap<String, ServiceFacts> {
        let shell = |restart: &str, healthcheck| ServiceFacts {
            entrypoint: vec!["python3".into()],
            cmd: vec!["/app/server.py".into()],
            healthcheck,
            restart: restart.into(),
            shell: true,
            image_env: BTreeMap::new(),
        };
        BTreeMap::from([
            ("api".to_string(), shell("unless-stopped", true)),
            ("cache".to_string(), shell("no", true)),
            (
                "sealed".to_string(),
                ServiceFacts {
                    restart: "no".into(),
                    ..Default::default()
                },
            ),
        ])
    }

    #[test]
    fn a_mutant_whose_change_compose_kept_out_is_told_apart() {
        let all = mutants(&model(), &facts());
        let get = |id: &str| all.iter().find(|m| m.id() == id).unwrap().clone();
        let original = model().raw;
        // Unmutated, no mutant has taken effect.
        for m in &all {
            assert!(!m.took_effect(&original), "{}", m.id());
        }
        let mut raw = original.clone();
        raw["services"]["api"]["environment"] = json!({});
        raw["services"]["api"]["ports"] = json!([{ "target": 9000 }]);
        raw["services"]["cache"]["volumes"] = json!([{ "type": "tmpfs", "target": "/data" }]);
        raw["networks"]["back"]["internal"] = json!(false);
        for id in [
            "env-removed:api:GREETING",
            "port-dropped:api:18480:8080",
            "volume-fresh:cache:ledger_data",
            "network-opened:network back",
        ] {
            assert!(get(id).took_effect(&raw), "{id}");
        }
        assert!(!get("restart-removed:api").took_effect(&raw));
    }

    #[test]
    fn a_variable_the_image_sets_to_the_same_value_is_no_mutant() {
        let mut facts = facts();
        let api = facts.get_mut("api").unwrap();
        api.image_env = BTreeMap::from([("GREETING".to_string(), "hello".to_string())]);
        let env = |facts: &BTreeMap<String, ServiceFacts>| -> Vec<String> {
            mutants(&model(), facts)
                .iter()
                .filter(|m| m.kind == MutantKind::EnvRemoved)
                .map(Mutant::id)
                .collect()
        };
        assert!(env(&facts).is_empty());
        let api = facts.get_mut("api").unwrap();
        api.image_env.insert("GREETING".into(), "hi".into());
        assert_eq!(env(&facts), ["env-removed:api:GREETING"]);
        // A literal `$` reaches the model as `$$` and the image as `$`: still the same value.
        let mut model = model();
        model.raw["services"]["api"]["environment"]["GREETING"] = json!("co$$t");
        let api = facts.get_mut("api").unwrap();
        api.image_env.insert("GREETING".into(), "co$t".into());
        let equivalent = mutants(&model, &facts)
            .iter()
            .any(|m| m.id() == "env-removed:api:GREETING");
        assert!(!equivalent);
    }

    #[test]
    fn each_kind_is_derived_where_the_stack_has_what_it_breaks() {
        let ids: Vec<String> = mutants(&model(), &facts()).iter().map(Mutant::id).collect();
        assert_eq!(
            ids,
            [
                "port-dropped:api:18480:8080",
                "health-fails:api",
                "idle-command:api",
                "exits-early:api",
                "restart-removed:api",
                "env-removed:api:GREETING",
                "depends-on-dropped:api:cache",
                "mount-writable:api:/app",
                "health-fails:cache",
                "idle-command:cache",
                "exits-early:cache",
                "volume-fresh:cache:ledger_data",
                "network-opened:network back",
                "network-opened:sealed",
            ]
        );
    }

    #[test]
    fn each_file_changes_only_its_part_in_compose_syntax() {
        let all = mutants(&model(), &facts());
        let file = |id: &str| all.iter().find(|m| m.id() == id).unwrap().file.clone();
        assert_eq!(
            file("port-dropped:api:18480:8080"),
            r#"{"services":{"api":{"ports":!override [{"target":9000}]}}}"#
        );
        assert_eq!(
            file("env-removed:api:GREETING"),
            r#"{"services":{"api":{"environment":!override {},"env_file":!reset null}}}"#
        );
        assert!(file("exits-early:api").contains(
            r#""entrypoint":!override ["sh","-c","\"$$@\" & sleep 2; exit 1","sh","python3"]"#
        ));
        assert!(file("exits-early:api").contains(r#""command":!override ["/app/server.py"]"#));
        assert!(file("volume-fresh:cache:ledger_data")
            .contains(r#""volumes":!override [{"target":"/data","type":"tmpfs"}]"#));
        assert!(file("mount-writable:api:/app").contains(r#""read_only":false"#));
        assert_eq!(
            file("network-opened:network back"),
            r#"{"networks":{"back":{"internal":false}}}"#
        );
    }
}
