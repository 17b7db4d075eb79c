// SPDX-License-Identifier: MIT OR Apache-2.0
//! Every option of the user API, declared once: its name in Rust, in Python and in
//! JavaScript, the kind of value it takes (which decides how a raw value is judged), its
//! default, and where it goes. A binding hands over the raw values it received; the core
//! reads them with [`read`], so a new option is one row here (plus the stubs and
//! declarations of the two packages).
//!
//! Naming, checked by a test: Python spells the Rust name and adds `_ms` to durations
//! (`ttl_ms`); JavaScript camel-cases it and keeps milliseconds implicit (`ttl`), as the seed.

use std::borrow::Cow;
use std::time::Duration;

use super::validate::{self, Raw, MAX_MS};
use crate::client::ClientOptions;
use crate::error::{Error, Result};
use crate::lock::{
    AcquireOptions, LockOptions, ManagerOptions, DEFAULT_DEADLOCK_TIMEOUT, DEFAULT_FALLBACK_POLL,
    DEFAULT_TIMEOUT, DEFAULT_TTL, DEFAULT_WAITER_LEASE,
};

/// The language whose names an error should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    Python,
    Node,
}

/// The kind of value an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Whole milliseconds (a number; in Python also a `timedelta`) within `min..=max`.
    Millis { min: u64, max: u64 },
    /// A 32-bit signed integer.
    Priority,
    /// A boolean.
    Flag,
    /// An owner id (1–256 bytes without NUL).
    OwnerId,
    /// A string, checked where it is used.
    Text,
}

/// A value read for an option.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Millis(Duration),
    Int(i32),
    Flag(bool),
    Text(String),
}

/// One option of one table.
pub struct Spec<T> {
    /// The Rust name (and the core's name in its own errors).
    pub name: &'static str,
    /// The Python keyword.
    pub python: &'static str,
    /// The JavaScript property.
    pub js: &'static str,
    pub kind: Kind,
    /// The default, as documentation shows it (the bindings' parity test compares it).
    pub default: &'static str,
    /// What it does, for the stubs and declarations.
    pub doc: &'static str,
    apply: fn(T, Value) -> T,
}

impl<T> Spec<T> {
    /// The option's name in `host`.
    pub fn host_name(&self, host: Host) -> &'static str {
        match host {
            Host::Python => self.python,
            Host::Node => self.js,
        }
    }
}

/// Options of one acquisition (`acquireLock`/`acquire_lock`, the scoped forms), beyond the
/// seed's positional `resource, ttl, timeout`; `ttl` and `timeout` are here too for the
/// scoped JS form, which takes them in its options object.
pub static ACQUIRE: &[Spec<AcquireOptions>] = &[
    Spec {
        name: "ttl",
        python: "ttl_ms",
        js: "ttl",
        kind: Kind::Millis {
            min: 1,
            max: MAX_MS,
        },
        default: "30000",
        doc: "the lock's time to live in ms; renewed every ttl/3 while held",
        apply: |o, v| match v {
            Value::Millis(d) => o.set_ttl(d),
            _ => o,
        },
    },
    Spec {
        name: "timeout",
        python: "timeout_ms",
        js: "timeout",
        kind: Kind::Millis {
            min: 0,
            max: MAX_MS,
        },
        default: "10000",
        doc: "how long to wait for the lock in ms; 0 tries once",
        apply: |o, v| match v {
            Value::Millis(d) => o.set_timeout(d),
            _ => o,
        },
    },
    Spec {
        name: "owner_id",
        python: "owner_id",
        js: "ownerId",
        kind: Kind::OwnerId,
        default: "the manager's",
        doc: "the owner id (a saga id) for this call: its acquisitions re-enter the lock",
        apply: |o, v| match v {
            Value::Text(s) => o.set_owner_id(s),
            _ => o,
        },
    },
    Spec {
        name: "priority",
        python: "priority",
        js: "priority",
        kind: Kind::Priority,
        default: "the manager's",
        doc: "the priority recorded for the deadlock detector (lowest is aborted first)",
        apply: |o, v| match v {
            Value::Int(p) => o.set_priority(p),
            _ => o,
        },
    },
    Spec {
        name: "fair",
        python: "fair",
        js: "fair",
        kind: Kind::Flag,
        default: "the manager's",
        doc: "FIFO waiting for this call: waiters served in arrival order, no barging",
        apply: |o, v| match v {
            Value::Flag(f) => o.set_fair(f),
            _ => o,
        },
    },
];

/// Options of a `LockManager`.
pub static MANAGER: &[Spec<ManagerOptions>] = &[
    Spec {
        name: "owner_id",
        python: "owner_id",
        js: "ownerId",
        kind: Kind::OwnerId,
        default: "none",
        doc: "the owner id (a saga id) of every acquisition: acquisitions with the same owner, \
              from any process or language, re-enter the lock",
        apply: |o, v| match v {
            Value::Text(s) => o.set_owner_id(s),
            _ => o,
        },
    },
    Spec {
        name: "priority",
        python: "priority",
        js: "priority",
        kind: Kind::Priority,
        default: "0",
        doc: "the priority recorded for the deadlock detector (lowest is aborted first)",
        apply: |o, v| match v {
            Value::Int(p) => o.set_priority(p),
            _ => o,
        },
    },
    Spec {
        name: "fair",
        python: "fair",
        js: "fair",
        kind: Kind::Flag,
        default: "false",
        doc: "FIFO waiting: waiters served in arrival order, no barging",
        apply: |o, v| match v {
            Value::Flag(f) => o.set_fair(f),
            _ => o,
        },
    },
    Spec {
        name: "fallback_poll",
        python: "fallback_poll_ms",
        js: "fallbackPoll",
        kind: Kind::Millis {
            min: 1,
            max: MAX_FALLBACK_POLL_MS,
        },
        default: "1000",
        doc: "the longest a waiter sleeps between two checks of a lock held by a txcoord \
              holder (a safety net for lost notices), in ms",
        apply: |o, v| match v {
            Value::Millis(d) => o.set_fallback_poll(d),
            _ => o,
        },
    },
    Spec {
        name: "waiter_lease",
        python: "waiter_lease_ms",
        js: "waiterLease",
        kind: Kind::Millis {
            min: 1,
            max: MAX_MS,
        },
        default: "5000",
        doc: "how long a waiter's registry entry lives unless refreshed, in ms (at least \
              twice the fallback poll); a crashed waiter's entry is gone after it",
        apply: |o, v| match v {
            Value::Millis(d) => o.set_waiter_lease(d),
            _ => o,
        },
    },
    Spec {
        name: "deadlock_timeout",
        python: "deadlock_timeout_ms",
        js: "deadlockTimeout",
        kind: Kind::Millis {
            min: 0,
            max: MAX_MS,
        },
        default: "1000",
        doc: "how long an acquisition with an owner id waits before it probes for a deadlock \
              through its saga and breaks it, in ms (0: never; a detector's sweep then does)",
        apply: |o, v| match v {
            Value::Millis(d) => o.set_deadlock_timeout(d),
            _ => o,
        },
    },
];

/// Options of a standalone `DistributedLock`, beyond the seed's `redis, lockKey, ttl`.
pub static LOCK: &[Spec<LockOptions>] = &[
    Spec {
        name: "owner_id",
        python: "owner_id",
        js: "ownerId",
        kind: Kind::OwnerId,
        default: "none",
        doc: "an explicit owner id (a saga id): acquisitions with the same owner re-enter",
        apply: |o, v| match v {
            Value::Text(s) => o.set_owner_id(s),
            _ => o,
        },
    },
    Spec {
        name: "priority",
        python: "priority",
        js: "priority",
        kind: Kind::Priority,
        default: "0",
        doc: "the priority recorded for the deadlock detector (lowest is aborted first)",
        apply: |o, v| match v {
            Value::Int(p) => o.set_priority(p),
            _ => o,
        },
    },
];

/// Options of a `Client`.
pub static CLIENT: &[Spec<ClientOptions>] = &[
    Spec {
        name: "key_prefix",
        python: "key_prefix",
        js: "keyPrefix",
        kind: Kind::Text,
        default: "''",
        doc: "a prefix put before every key txcoord writes (as ioredis' keyPrefix)",
        apply: |o, v| match v {
            Value::Text(s) => o.set_key_prefix(s),
            _ => o,
        },
    },
    Spec {
        name: "client_name",
        python: "client_name",
        js: "clientName",
        kind: Kind::Text,
        default: "txcoord-<random id>",
        doc: "the connection's name in CLIENT LIST",
        apply: |o, v| match v {
            Value::Text(s) => o.set_client_name(s),
            _ => o,
        },
    },
    Spec {
        name: "connect_timeout",
        python: "connect_timeout_ms",
        js: "connectTimeout",
        kind: Kind::Millis {
            min: 1,
            max: MAX_MS,
        },
        default: "1000",
        doc: "how long one connection attempt may take, in ms",
        apply: |o, v| match v {
            Value::Millis(d) => o.set_connect_timeout(d),
            _ => o,
        },
    },
    Spec {
        name: "response_timeout",
        python: "response_timeout_ms",
        js: "responseTimeout",
        kind: Kind::Millis {
            min: 1,
            max: MAX_MS,
        },
        default: "2000",
        doc: "how long one command may wait for its reply, in ms",
        apply: |o, v| match v {
            Value::Millis(d) => o.set_response_timeout(d),
            _ => o,
        },
    },
];

/// The longest fallback poll a manager accepts (ms).
pub const MAX_FALLBACK_POLL_MS: u64 = 60_000;

/// Judges one raw value for `spec` (named as `host` names it): `None` when absent.
pub fn value<T>(host: Host, spec: &Spec<T>, raw: Raw<'_>) -> Result<Option<Value>> {
    let arg = spec.host_name(host);
    Ok(match spec.kind {
        Kind::Millis { min, max } => {
            validate::millis(arg, raw, min, max)?.map(|ms| Value::Millis(Duration::from_millis(ms)))
        }
        Kind::Priority => validate::priority(arg, raw)?.map(Value::Int),
        Kind::Flag => validate::flag(arg, raw)?.map(Value::Flag),
        Kind::OwnerId => validate::owner_id(arg, raw)?.map(|s| Value::Text(s.to_string())),
        Kind::Text => validate::string(arg, raw)?.map(|s| Value::Text(s.to_string())),
    })
}

/// Reads the options of one table: `get` gives the raw value the host received for each
/// option (`Raw::Absent` when it was not given). Errors name the argument as `host` spells it.
pub fn read<'a, T: Default>(
    host: Host,
    table: &[Spec<T>],
    mut get: impl FnMut(&Spec<T>) -> Raw<'a>,
) -> Result<T> {
    let mut out = T::default();
    for spec in table {
        if let Some(v) = value(host, spec, get(spec))? {
            out = (spec.apply)(out, v);
        }
    }
    Ok(out)
}

/// The name `host` gives the argument the core calls `arg`: the option's name in that language
/// (`fallback_poll` → `fallback_poll_ms` / `fallbackPoll`), a few other arguments' (`lock_key`
/// → `lockKey`), and in JavaScript any other snake_case name camel-cased. A name that already
/// is the host's is returned as it is.
pub fn host_argument(host: Host, arg: &str) -> Cow<'_, str> {
    let option = ACQUIRE
        .iter()
        .map(|s| (s.name, s.host_name(host)))
        .chain(MANAGER.iter().map(|s| (s.name, s.host_name(host))))
        .chain(LOCK.iter().map(|s| (s.name, s.host_name(host))))
        .chain(CLIENT.iter().map(|s| (s.name, s.host_name(host))))
        .chain(EXTRA.iter().map(|(core, py, js)| {
            (
                *core,
                match host {
                    Host::Python => *py,
                    Host::Node => *js,
                },
            )
        }))
        .find(|(core, _)| *core == arg)
        .map(|(_, h)| h);
    match (option, host) {
        (Some(name), _) => Cow::Borrowed(name),
        (None, Host::Node) if arg.contains('_') => Cow::Owned(camel(arg)),
        (None, _) => Cow::Borrowed(arg),
    }
}

/// `snake_case` → `camelCase`.
fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut up = false;
    for c in snake.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Renames the argument of an error the core raised under its own names (`ttl`,
/// `fallback_poll`, `lock_key`, ...) to the name `host` uses (`ttl_ms`, `fallbackPoll`,
/// `lockKey`, ...): see [`host_argument`].
pub fn for_host(host: Host, e: Error) -> Error {
    let rename = |arg: Cow<'static, str>| -> Cow<'static, str> {
        let renamed = host_argument(host, &arg).into_owned();
        if renamed == arg {
            arg
        } else {
            Cow::Owned(renamed)
        }
    };
    match e {
        Error::InvalidArgument { arg, message } => Error::InvalidArgument {
            arg: rename(arg),
            message,
        },
        Error::InvalidType { arg, message } => Error::InvalidType {
            arg: rename(arg),
            message,
        },
        other => other,
    }
}

/// Whether `table` has an option `host` calls `name` (Python refuses unknown keywords).
pub fn accepts<T>(table: &[Spec<T>], host: Host, name: &str) -> bool {
    table.iter().any(|s| s.host_name(host) == name)
}

/// One option as the packages and their tests see it: [`describe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionInfo {
    /// `acquire`, `manager`, `lock` or `client`.
    pub table: &'static str,
    pub name: &'static str,
    pub python: &'static str,
    pub js: &'static str,
    /// `millis`, `priority`, `flag`, `owner_id` or `text`.
    pub kind: &'static str,
    /// For `millis`: the accepted range, in ms.
    pub min: Option<u64>,
    pub max: Option<u64>,
    pub default: &'static str,
    pub doc: &'static str,
}

fn info<T>(table: &'static str, specs: &'static [Spec<T>]) -> impl Iterator<Item = OptionInfo> {
    specs.iter().map(move |s| {
        let (kind, min, max) = match s.kind {
            Kind::Millis { min, max } => ("millis", Some(min), Some(max)),
            Kind::Priority => ("priority", None, None),
            Kind::Flag => ("flag", None, None),
            Kind::OwnerId => ("owner_id", None, None),
            Kind::Text => ("text", None, None),
        };
        OptionInfo {
            table,
            name: s.name,
            python: s.python,
            js: s.js,
            kind,
            min,
            max,
            default: s.default,
            doc: s.doc,
        }
    })
}

/// Every option of every table, for the packages to expose and their parity test to compare
/// with their stubs and declarations.
pub fn describe() -> Vec<OptionInfo> {
    info("acquire", ACQUIRE)
        .chain(info("manager", MANAGER))
        .chain(info("lock", LOCK))
        .chain(info("client", CLIENT))
        .collect()
}

/// Arguments that are not options but that the core names in errors: `(Rust, Python, JS)`.
const EXTRA: &[(&str, &str, &str)] = &[
    ("lock_key", "lock_key", "lockKey"),
    ("additional_time", "additional_time_ms", "additionalTime"),
];

/// The constants both packages export, by one name each (the parity test compares them).
pub fn constants() -> Vec<(&'static str, u64)> {
    vec![
        (
            "PROTOCOL_VERSION",
            u64::from(crate::protocol::PROTOCOL_VERSION),
        ),
        ("DEFAULT_TTL_MS", DEFAULT_TTL.as_millis() as u64),
        ("DEFAULT_TIMEOUT_MS", DEFAULT_TIMEOUT.as_millis() as u64),
        (
            "DEFAULT_FALLBACK_POLL_MS",
            DEFAULT_FALLBACK_POLL.as_millis() as u64,
        ),
        (
            "DEFAULT_WAITER_LEASE_MS",
            DEFAULT_WAITER_LEASE.as_millis() as u64,
        ),
        (
            "DEFAULT_DEADLOCK_TIMEOUT_MS",
            DEFAULT_DEADLOCK_TIMEOUT.as_millis() as u64,
        ),
        ("MAX_FALLBACK_POLL_MS", MAX_FALLBACK_POLL_MS),
        (
            "DEFAULT_LEADER_TTL_MS",
            crate::election::DEFAULT_LEADER_TTL.as_millis() as u64,
        ),
        ("MAX_MS", MAX_MS),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn check_names<T>(table: &[Spec<T>]) {
        for s in table {
            let ms = matches!(s.kind, Kind::Millis { .. });
            let python = if ms {
                format!("{}_ms", s.name)
            } else {
                s.name.to_string()
            };
            assert_eq!(s.python, python, "{}", s.name);
            assert_eq!(s.js, camel(s.name), "{}", s.name);
            assert!(!s.doc.is_empty());
        }
    }

    #[test]
    fn names_follow_each_language() {
        check_names(ACQUIRE);
        check_names(MANAGER);
        check_names(LOCK);
        check_names(CLIENT);
    }

    #[test]
    fn defaults_are_the_cores() {
        let m = ManagerOptions::default();
        let by_name = |n: &str| MANAGER.iter().find(|s| s.name == n).unwrap().default;
        assert_eq!(
            by_name("fallback_poll"),
            DEFAULT_FALLBACK_POLL.as_millis().to_string()
        );
        assert_eq!(
            by_name("waiter_lease"),
            DEFAULT_WAITER_LEASE.as_millis().to_string()
        );
        assert!(format!("{m:?}").contains("fair: false"));
        let a = |n: &str| ACQUIRE.iter().find(|s| s.name == n).unwrap().default;
        assert_eq!(a("ttl"), DEFAULT_TTL.as_millis().to_string());
        assert_eq!(a("timeout"), DEFAULT_TIMEOUT.as_millis().to_string());
        assert_eq!(
            by_name("deadlock_timeout"),
            DEFAULT_DEADLOCK_TIMEOUT.as_millis().to_string()
        );
        let constants = constants();
        for info in describe() {
            if info.kind != "millis" {
                continue;
            }
            let max = constants.iter().find(|(n, _)| *n == "MAX_MS").unwrap().1;
            let poll = constants
                .iter()
                .find(|(n, _)| *n == "MAX_FALLBACK_POLL_MS")
                .unwrap()
                .1;
            assert!(
                info.max == Some(max) || info.max == Some(poll),
                "{}: its cap is an exported constant",
                info.name
            );
        }
    }

    #[test]
    fn reading_names_the_hosts_argument() {
        let ok = read(Host::Node, MANAGER, |s| match s.name {
            "fair" => Raw::Bool(true),
            "fallback_poll" => Raw::Float(250.0),
            _ => Raw::Absent,
        })
        .unwrap();
        assert!(format!("{ok:?}").contains("fair: true"));
        for (host, name) in [
            (Host::Python, "fallback_poll_ms"),
            (Host::Node, "fallbackPoll"),
        ] {
            let e = read(host, MANAGER, |s| match s.name {
                "fallback_poll" => Raw::Float(1.5),
                _ => Raw::Absent,
            })
            .unwrap_err();
            assert_eq!(e.argument(), Some(name));
            let e = read(host, MANAGER, |s| match s.name {
                "fair" => Raw::Str("yes"),
                _ => Raw::Absent,
            })
            .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidType);
        }
    }

    #[test]
    fn core_errors_are_renamed_for_the_host() {
        let e = Error::invalid_argument("waiter_lease", "x");
        assert_eq!(
            for_host(Host::Python, e).argument(),
            Some("waiter_lease_ms")
        );
        let e = Error::invalid_argument("waiter_lease", "x");
        assert_eq!(for_host(Host::Node, e).argument(), Some("waiterLease"));
        let e = Error::invalid_argument("resource", "x");
        assert_eq!(for_host(Host::Node, e).argument(), Some("resource"));
        let e = Error::invalid_argument("lock_key", "x");
        let e = for_host(Host::Node, e);
        assert_eq!(e.argument(), Some("lockKey"));
        assert!(e.to_string().contains("`lockKey`"), "{e}");
        let e = Error::invalid_type("saga_id", "x");
        assert_eq!(for_host(Host::Node, e).argument(), Some("sagaId"));
        let e = Error::invalid_type("saga_id", "x");
        assert_eq!(for_host(Host::Python, e).argument(), Some("saga_id"));
        for host in [Host::Python, Host::Node] {
            for info in describe() {
                let own = match host {
                    Host::Python => info.python,
                    Host::Node => info.js,
                };
                assert_eq!(host_argument(host, own), own, "a host name stays as it is");
            }
        }
        assert!(accepts(MANAGER, Host::Python, "deadlock_timeout_ms"));
        assert!(!accepts(MANAGER, Host::Python, "deadlockTimeout"));
        assert!(accepts(MANAGER, Host::Node, "deadlockTimeout"));
    }
}
