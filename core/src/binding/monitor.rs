// SPDX-License-Identifier: MIT OR Apache-2.0
//! The options of the saga monitor, the Alertmanager sink and the metrics collector, declared
//! once for both bindings (see [`super::options`]), and the arguments of theirs that are not
//! single values: the monitor's per-type limits and the sink's labels.

use std::time::Duration;

use super::options::{host_argument, Host, Kind, Spec, Value};
use super::validate::{self, Raw, MAX_MS};
use crate::alert::AlertmanagerOptions;
use crate::error::{Error, Result};
use crate::metrics::{MetricNames, MetricsOptions};
use crate::monitor::MonitorOptions;

/// The largest `max_retries` a monitor accepts.
pub const MAX_RETRIES: u64 = 1_000;

/// Options of a `SagaMonitor`, beyond the seed's four positional arguments (repository,
/// metrics collector, alert manager, deadlock detector). The Redis of the election, the
/// per-type limits and the recovery handlers are the bindings' own arguments.
pub static MONITOR: &[Spec<MonitorOptions>] = &[
    Spec {
        name: "interval",
        python: "interval_ms",
        js: "interval",
        kind: Kind::Millis {
            min: 1,
            max: MAX_MS,
        },
        default: "30000",
        doc: "the time between two passes, in ms (the seed's 30 s)",
        apply: |o, v| match v {
            Value::Millis(d) => o.set_interval(d),
            _ => o,
        },
    },
    Spec {
        name: "default_limit",
        python: "default_limit_ms",
        js: "defaultLimit",
        kind: Kind::Millis {
            min: 1,
            max: MAX_MS,
        },
        default: "300000",
        doc: "how long a saga of a type without its own limit may run before it is alerted \
              as long-running, in ms (the seed's 5 min)",
        apply: |o, v| match v {
            Value::Millis(d) => o.set_default_limit(d),
            _ => o,
        },
    },
    Spec {
        name: "election_name",
        python: "election_name",
        js: "electionName",
        kind: Kind::Text,
        default: "saga-monitor",
        doc: "the leader election's name: among the monitors of one name, only the leader acts",
        apply: |o, v| match v {
            Value::Text(s) => o.set_election_name(s),
            _ => o,
        },
    },
    Spec {
        name: "leader_ttl",
        python: "leader_ttl_ms",
        js: "leaderTtl",
        kind: Kind::Millis {
            min: 1,
            max: MAX_MS,
        },
        default: "10000",
        doc: "the leader's lease, in ms: another monitor takes over within it when the leader dies",
        apply: |o, v| match v {
            Value::Millis(d) => o.set_leader_ttl(d),
            _ => o,
        },
    },
    Spec {
        name: "candidate_id",
        python: "candidate_id",
        js: "candidateId",
        kind: Kind::OwnerId,
        default: "a random id",
        doc: "this monitor's id in the election (as observers see the leader)",
        apply: |o, v| match v {
            Value::Text(s) => o.set_candidate_id(s),
            _ => o,
        },
    },
    Spec {
        name: "max_retries",
        python: "max_retries",
        js: "maxRetries",
        kind: Kind::Count {
            min: 0,
            max: MAX_RETRIES,
        },
        default: "3",
        doc: "a stuck saga is retried while its retry count is below this (an unset count \
              being 0), then compensated (the seed's 3)",
        apply: |o, v| match v {
            Value::Count(n) => o.set_max_retries(n as u32),
            _ => o,
        },
    },
    Spec {
        name: "start",
        python: "start",
        js: "start",
        kind: Kind::Flag,
        default: "true",
        doc: "whether the monitor starts its passes on construction, as the seed's does \
              (false: passes run only when tick() is called)",
        apply: |o, v| match v {
            Value::Flag(f) => o.set_start(f),
            _ => o,
        },
    },
];

/// Options of an `AlertmanagerSink`, beyond its URLs; the labels added to every alert and the
/// collector that counts deliveries are the bindings' own arguments.
pub static ALERTMANAGER: &[Spec<AlertmanagerOptions>] = &[
    Spec {
        name: "timeout",
        python: "timeout_ms",
        js: "timeout",
        kind: Kind::Millis {
            min: 1,
            max: MAX_MS,
        },
        default: "5000",
        doc: "how long one post to one Alertmanager may take, connecting included, in ms",
        apply: |o, v| match v {
            Value::Millis(d) => o.set_timeout(d),
            _ => o,
        },
    },
    Spec {
        name: "ends_after",
        python: "ends_after_ms",
        js: "endsAfter",
        kind: Kind::Millis {
            min: 1,
            max: MAX_MS,
        },
        default: "none",
        doc: "active alerts are sent with endsAt this far ahead, in ms, so Alertmanager \
              resolves them itself if they stop being re-sent (default: Alertmanager's \
              resolve_timeout applies)",
        apply: |o, v| match v {
            Value::Millis(d) => o.set_ends_after(d),
            _ => o,
        },
    },
    Spec {
        name: "generator_url",
        python: "generator_url",
        js: "generatorUrl",
        kind: Kind::Text,
        default: "none",
        doc: "the generatorURL of every alert (a link back to the sender)",
        apply: |o, v| match v {
            Value::Text(s) => o.set_generator_url(s),
            _ => o,
        },
    },
];

/// The values of the metrics collector's `names` option.
pub const METRIC_NAMES: &[&str] = &["legacy", "convention", "both"];

/// Options of a `TransactionMetricsCollector`, beyond the seed's `metricsRegistry`.
pub static METRICS: &[Spec<MetricsOptions>] = &[Spec {
    name: "names",
    python: "names",
    js: "names",
    kind: Kind::Choice(METRIC_NAMES),
    default: "legacy",
    doc: "the names the monitor's gauges are exported under: the seed's (`legacy`), the \
          Prometheus conventions' (`convention`, under txcoord_), or `both`",
    apply: |o, v| match v {
        Value::Text(s) => match MetricNames::parse("names", &s) {
            Ok(n) => o.set_names(n),
            Err(_) => o,
        },
        _ => o,
    },
}];

/// One entry of the monitor's per-type limits (`limits_ms={"CreateOrderSaga": 300000}` in
/// Python, `limits: { CreateOrderSaga: 300000 }` in JS), added to `options` (over the seed's
/// limits). The saga type is a non-empty string; the limit whole milliseconds, 1 to
/// [`MAX_MS`].
pub fn limit(
    host: Host,
    options: MonitorOptions,
    saga_type: Raw<'_>,
    limit: Raw<'_>,
) -> Result<MonitorOptions> {
    let arg = arg(host, "limits");
    let Some(saga_type) = validate::string(arg, saga_type)? else {
        return Err(Error::invalid_type(
            arg,
            "its keys must be saga types (strings)",
        ));
    };
    if saga_type.is_empty() {
        return Err(Error::invalid_argument(arg, "a saga type is empty"));
    }
    let ms = validate::millis(arg, limit, 1, MAX_MS)?.ok_or_else(|| {
        Error::invalid_type(
            arg,
            format!("the limit of {saga_type:?} must be a number of milliseconds"),
        )
    })?;
    Ok(options.set_limit(saga_type, Duration::from_millis(ms)))
}

/// One label added to every alert an `AlertmanagerSink` sends (`labels={"env": "prod"}`): a
/// name and a value, both non-empty strings.
pub fn label(
    host: Host,
    options: AlertmanagerOptions,
    name: Raw<'_>,
    value: Raw<'_>,
) -> Result<AlertmanagerOptions> {
    let arg = arg(host, "labels");
    let (Some(name), Some(value)) = (validate::string(arg, name)?, validate::string(arg, value)?)
    else {
        return Err(Error::invalid_type(
            arg,
            "must map label names to values, both strings",
        ));
    };
    if name.is_empty() {
        return Err(Error::invalid_argument(arg, "a label name is empty"));
    }
    Ok(options.set_label(name, value))
}

/// The host's name of an argument, as a `'static` name for errors.
fn arg(host: Host, core: &'static str) -> &'static str {
    match host_argument(host, core) {
        std::borrow::Cow::Borrowed(name) => name,
        std::borrow::Cow::Owned(_) => core,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding::options::read;
    use crate::error::ErrorKind;

    #[test]
    fn defaults_are_the_cores() {
        let by_name = |n: &str| MONITOR.iter().find(|s| s.name == n).unwrap().default;
        assert_eq!(
            by_name("interval"),
            crate::monitor::DEFAULT_INTERVAL.as_millis().to_string()
        );
        assert_eq!(
            by_name("leader_ttl"),
            crate::DEFAULT_LEADER_TTL.as_millis().to_string()
        );
        let defaults = format!("{:?}", MonitorOptions::default());
        assert!(defaults.contains("max_retries: 3"), "{defaults}");
        assert!(defaults.contains("default_limit: 300s"), "{defaults}");
        assert!(
            defaults.contains("election_name: \"saga-monitor\""),
            "{defaults}"
        );
        assert!(defaults.contains("start: true"), "{defaults}");
        assert_eq!(
            ALERTMANAGER[0].default,
            crate::alert::DEFAULT_ALERTMANAGER_TIMEOUT
                .as_millis()
                .to_string()
        );
        assert_eq!(METRICS[0].default, MetricNames::default().as_str());
    }

    #[test]
    fn options_are_read_and_named_for_the_host() {
        let o = read(Host::Python, MONITOR, |s| match s.name {
            "interval" => Raw::Int(250),
            "max_retries" => Raw::Int(0),
            "start" => Raw::Bool(false),
            _ => Raw::Absent,
        })
        .unwrap();
        let o = format!("{o:?}");
        assert!(
            o.contains("interval: 250ms") && o.contains("max_retries: 0"),
            "{o}"
        );
        let e = read(Host::Python, MONITOR, |s| match s.name {
            "max_retries" => Raw::Int(-1),
            _ => Raw::Absent,
        })
        .unwrap_err();
        assert_eq!(e.argument(), Some("max_retries"));
        let e = read(Host::Node, MONITOR, |s| match s.name {
            "max_retries" => Raw::Bool(true),
            _ => Raw::Absent,
        })
        .unwrap_err();
        assert_eq!(
            (e.kind(), e.argument()),
            (ErrorKind::InvalidType, Some("maxRetries"))
        );
        let e = read(Host::Node, METRICS, |_| Raw::Str("dashboards")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("'convention'"), "{e}");
        let m = read(Host::Python, METRICS, |_| Raw::Str("both")).unwrap();
        assert!(format!("{m:?}").contains("Both"));
    }

    #[test]
    fn limits_and_labels() {
        let o = limit(
            Host::Python,
            MonitorOptions::default(),
            Raw::Str("QuickSaga"),
            Raw::Int(10_000),
        )
        .unwrap();
        assert!(format!("{o:?}").contains("(\"QuickSaga\", 10s)"), "{o:?}");
        let e = limit(Host::Python, o.clone(), Raw::Str(""), Raw::Int(1)).unwrap_err();
        assert_eq!(e.argument(), Some("limits_ms"));
        let e = limit(Host::Node, o.clone(), Raw::Str("T"), Raw::Float(0.5)).unwrap_err();
        assert_eq!(
            (e.kind(), e.argument()),
            (ErrorKind::InvalidArgument, Some("limits"))
        );
        let e = limit(Host::Python, o, Raw::Str("T"), Raw::Str("5m")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidType);
        let a = label(
            Host::Python,
            AlertmanagerOptions::new(),
            Raw::Str("env"),
            Raw::Str("prod"),
        )
        .unwrap();
        assert!(format!("{a:?}").contains("\"env\", \"prod\""), "{a:?}");
        let e = label(Host::Node, a, Raw::Str("env"), Raw::Int(1)).unwrap_err();
        assert_eq!(
            (e.kind(), e.argument()),
            (ErrorKind::InvalidType, Some("labels"))
        );
    }
}
